"""Operations: declarative automation, and what leaves Dagster when things fail (alerts)."""

import dagster as dg
from sales_ops.defs.operations.automation import automation_sensor
from sales_ops.defs.operations.sensors import alerts_sensor, run_failure_recorder

defs = dg.Definitions(sensors=[automation_sensor, run_failure_recorder, alerts_sensor])
