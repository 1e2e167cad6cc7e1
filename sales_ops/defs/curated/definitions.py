"""Curated: `orders_latest` (compaction) and the rollups."""

import dagster as dg

from sales_ops.defs.curated.assets import compaction_job, orders_latest, refresh_job, rollup_assets
from sales_ops.defs.curated.schedules import compaction_schedule

defs = dg.Definitions(
    assets=[orders_latest, *rollup_assets],
    jobs=[compaction_job, refresh_job],
    schedules=[compaction_schedule],
)
