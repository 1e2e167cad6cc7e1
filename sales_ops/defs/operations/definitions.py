"""Operations: what happens when runs fail."""

import dagster as dg

from sales_ops.defs.operations.sensors import run_failure_recorder

defs = dg.Definitions(sensors=[run_failure_recorder])
