"""New Firehose processing-failed objects → the failing check, with its reasons (same S3
`StartAfter` cursor as the raw-objects sensor)."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_ops.defs.ingest.sensors import INTERVAL_S, new_objects_result
from sales_ops.defs.quality.checks import processing_failed_job
from sales_ops.defs.resources import PipelineResource
from sales_ops.settings import ERROR_PREFIX


@dg.sensor(
    job=processing_failed_job,
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New Firehose processing-failed records → the no_processing_failed check, with reasons.",
)
def processing_failed_sensor(
    context: dg.SensorEvaluationContext, pipeline: PipelineResource, s3: S3Resource
) -> dg.SensorResult:
    return new_objects_result(
        context,
        s3,
        pipeline.settings().bucket,
        ERROR_PREFIX,
        processing_failed_job,
        "processing-failed objects",
    )
