"""Dagster definitions by area; `sales_ops.definitions` merges them into one `Definitions`.

resources (per target) · load (mock orders) · catalog (DynamoDB, raw files, crawler) ·
curated (compaction, rollups) · checks (data quality) · jobs · sensors · schedules
"""
