"""Crawl every 15 minutes (on by default) so new dt/hour partitions are in the catalogue."""

import dagster as dg

from sales_ops.defs.catalog.assets import crawl_job

crawl_schedule = dg.ScheduleDefinition(
    name="crawl_every_15_minutes",
    job=crawl_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Crawl raw/orders/ so new dt/hour partitions are in the catalogue.",
)
