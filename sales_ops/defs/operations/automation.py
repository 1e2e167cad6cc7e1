"""The automation sensor: evaluates every asset's and check's `AutomationCondition` (policies.py)
and launches what they request. Defined here rather than left to Dagster's default one so that it
is running from the start and its runs carry a maximum runtime for run monitoring."""

import dagster as dg
from sales_ops.defs import policies

automation_sensor = dg.AutomationConditionSensorDefinition(
    "sales_ops_automation",
    target=dg.AssetSelection.all(include_sources=True),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={"dagster/max_runtime": str(policies.MAX_RUNTIME_S)},
    description="Declarative automation for every asset and check (see sales_ops/defs/policies.py).",
)
