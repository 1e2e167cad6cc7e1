"""Compaction and the rollups hourly (on by default)."""

import dagster as dg

from sales_ops.defs.curated.assets import compaction_job

compaction_schedule = dg.ScheduleDefinition(
    name="compaction_hourly",
    job=compaction_job,
    # At :05, after the :00 crawl, so the hour's partitions are catalogued first.
    cron_schedule="5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Incremental compaction into orders_latest, then the rollups and their checks.",
)
