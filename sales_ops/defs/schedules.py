"""Schedules: compaction + rollups hourly (on by default); a crawl every 15 minutes and a recurring
mock load (both off by default: turn them on in the UI).

The crawl is off because the compaction registers new dt/hour partitions itself and the raw schema
is the handler's contract; on AWS each crawl is billed for 10 minutes at least, so 96 crawls a day
would cost more than the rest of an idle stack (issue 16). Turn it on after a schema change.
"""

import dagster as dg

from sales_ops.defs.catalog import crawl_job
from sales_ops.defs.curated import compaction_job
from sales_ops.defs.load import load_job

crawl_schedule = dg.ScheduleDefinition(
    name="crawl_every_15_minutes",
    job=crawl_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Crawl raw/orders/ (off by default: compaction registers new partitions itself).",
)

compaction_schedule = dg.ScheduleDefinition(
    name="compaction_hourly",
    job=compaction_job,
    # At :05: the hour's last Firehose buffers (60 s by default) are in S3 by then.
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
