"""sales-ops: control plane and local stand-ins for a real-time sales pipeline on AWS."""
