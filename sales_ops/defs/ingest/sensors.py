"""The raw-objects sensor: new raw objects → refresh run.

S3 sensors keep the last key they saw as their cursor and list with `StartAfter=cursor`, so a
tick reads only what is new, never the whole prefix. Firehose names objects by time under
time-ordered prefixes, so keys arrive in lexical order. The exception is a late event that lands
in an older dt/hour prefix after the cursor has moved past it: the sensor does not see it, but the
crawl and compaction schedules pick it up (compaction works from its own watermark, not from keys).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_ops.defs.curated.assets import refresh_job
from sales_ops.defs.resources import PipelineResource
from sales_ops.settings import RAW_PREFIX

PAGE_SIZE = 1000
MAX_KEYS_PER_TICK = 10_000  # a backlog is worked through over several ticks
INTERVAL_S = 30


def list_new_objects(
    client: Any, bucket: str, prefix: str, start_after: str | None, limit: int = MAX_KEYS_PER_TICK
) -> list[dict[str, Any]]:
    """Objects under `prefix` whose key sorts after `start_after`, in key order, at most `limit`."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE}
    if start_after:
        kwargs["StartAfter"] = start_after
    objects: list[dict[str, Any]] = []
    while len(objects) < limit:
        page = client.list_objects_v2(**kwargs)
        objects += page.get("Contents", [])
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    return objects[:limit]


ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


# A run "in progress" for longer than this is presumed orphaned (its worker died) and no longer
# holds new objects back; the run queue still keeps writer runs one at a time.
STALE_AFTER = timedelta(hours=1)


def _busy(instance: dg.DagsterInstance, job_name: str) -> int:
    recent = datetime.now(UTC) - STALE_AFTER
    return instance.get_runs_count(dg.RunsFilter(job_name=job_name, statuses=ACTIVE, created_after=recent))


def new_objects_result(
    context: dg.SensorEvaluationContext,
    s3: S3Resource,
    bucket: str,
    prefix: str,
    job: Any,  # an asset job (define_asset_job)
    what: str,
) -> dg.SensorResult:
    objects = list_new_objects(s3.get_client(), bucket, prefix, context.cursor)
    if not objects:
        return dg.SensorResult(skip_reason=f"no new {what} after {context.cursor or 'the start'}")
    newest = objects[-1]["Key"]
    if _busy(context.instance, job.name):
        # Coalesce: keep the cursor, so the next tick after this run asks for all of these at once
        # instead of queueing one run per tick while the stream is busy.
        return dg.SensorResult(skip_reason=f"{len(objects)} new {what} wait for the {job.name} in progress")
    context.log.info(f"{len(objects)} new {what}, newest {newest}")
    request = dg.RunRequest(
        run_key=newest,  # the same newest key never triggers twice
        job_name=job.name,
        tags={
            "sales_ops/trigger": what.replace(" ", "_"),
            "sales_ops/new_objects": str(len(objects)),
            "sales_ops/newest_key": newest[-200:],  # tag values are limited in length
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=newest)


@dg.sensor(
    job=refresh_job,
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New objects under raw/orders/ → crawl, compact and check (cursor: last key seen).",
)
def raw_objects_sensor(
    context: dg.SensorEvaluationContext, pipeline: PipelineResource, s3: S3Resource
) -> dg.SensorResult:
    return new_objects_result(context, s3, pipeline.settings().bucket, RAW_PREFIX, refresh_job, "raw objects")
