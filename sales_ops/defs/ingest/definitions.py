"""Ingest: the mock load, the observed DynamoDB table and raw files, the raw-objects sensor."""

import dagster as dg
from sales_ops.defs.ingest.load import load_job, load_schedule, order_load
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.ingest.sources import dynamodb_orders, raw_orders_files

defs = dg.Definitions(
    assets=dg.with_source_code_references([order_load, dynamodb_orders, raw_orders_files]),
    jobs=[load_job],
    schedules=[load_schedule],
    sensors=[raw_objects_sensor],
)
