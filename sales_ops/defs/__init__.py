"""Dagster definitions by area, one folder each (`defs/<area>/definitions.py` lists its part);
`sales_ops.definitions` merges them into one `Definitions`.

resources.py (per target) · ingest (mock load, observed DynamoDB table and raw files, raw-objects
sensor) · catalog (crawler) · curated (compaction, rollups) · quality (checks, processing-failed
sensor) · operations (run failures)
"""
