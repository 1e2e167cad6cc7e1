"""Quality: the data-quality checks and the processing-failed sensor."""

import dagster as dg
from sales_ops.defs.quality.checks import ALL_CHECKS, processing_failed_job, quality_job
from sales_ops.defs.quality.sensors import processing_failed_sensor

defs = dg.Definitions(
    asset_checks=ALL_CHECKS, jobs=[quality_job, processing_failed_job], sensors=[processing_failed_sensor]
)
