"""Schedules: crawl every 15 minutes and compaction + rollups hourly (both on by default), and an
optional recurring mock load (off by default: turn it on in the UI for a shop that keeps selling).
"""

import dagster as dg

from sales_ops.defs.catalog import crawl_job
from sales_ops.defs.curated import compaction_job
from sales_ops.defs.load import load_job

crawl_schedule = dg.ScheduleDefinition(
    name="crawl_every_15_minutes",
    job=crawl_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Crawl raw/orders/ so new dt/hour partitions are in the catalogue.",
)

compaction_schedule = dg.ScheduleDefinition(
    name="compaction_hourly",
    job=compaction_job,
    # At :05, after the :00 crawl, so the hour's partitions are catalogued first.
    cron_schedule="5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Incremental compaction into orders_latest, then the rollups and their checks.",
)

LOAD_RUN_CONFIG = {"ops": {"order_load": {"config": {"orders": 200, "rate": 50.0}}}}

load_schedule = dg.ScheduleDefinition(
    name="mock_load_every_10_minutes",
    job=load_job,
    cron_schedule="*/10 * * * *",
    run_config=LOAD_RUN_CONFIG,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="A batch of 200 mock orders every 10 minutes (off by default).",
)

defs = dg.Definitions(schedules=[crawl_schedule, compaction_schedule, load_schedule])
