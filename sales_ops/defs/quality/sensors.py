"""New Firehose processing-failed objects → a run of the failing check, with its reasons (the same
S3 `StartAfter` cursor as the raw-objects sensor; the newest key is the run key, so the same
objects never trigger twice)."""

from dagster_aws.s3 import S3Resource

import dagster as dg
from sales_ops.defs.ingest.listing import list_new_objects
from sales_ops.defs.ingest.sensors import INTERVAL_S
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
    objects = list_new_objects(s3.get_client(), pipeline.settings().bucket, ERROR_PREFIX, context.cursor)
    if not objects:
        return dg.SensorResult(
            skip_reason=f"no new processing-failed objects after {context.cursor or 'the start'}"
        )
    newest = objects[-1]["Key"]
    context.log.info(f"{len(objects)} new processing-failed objects, newest {newest}")
    request = dg.RunRequest(
        run_key=newest,
        job_name=processing_failed_job.name,
        tags={
            "sales_ops/trigger": "processing_failed_objects",
            "sales_ops/new_objects": str(len(objects)),
            "sales_ops/newest_key": newest[-200:],  # tag values are limited in length
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=newest)
