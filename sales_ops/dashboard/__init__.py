"""The live sales dashboard: `sales-ops dashboard` serves it on 127.0.0.1 (see app.py)."""
