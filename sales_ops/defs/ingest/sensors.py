"""The raw-objects sensor: new raw objects → an observation of `raw_orders_files`.

It launches no run itself. The observation carries the newest key as the data version, and the
declarative automation (policies.py) decides what that new data asks for: compaction, the
rollups after it, and a crawl only if `raw_orders` is missing. The asset's Automation tab then
says why each one ran or did not.

The sensor keeps the last key it saw as its cursor and lists with `StartAfter=cursor`, so a tick
reads only what is new, never the whole prefix. Firehose names objects by time under
time-ordered prefixes, so keys arrive in lexical order. The exception is a late event that lands
in an older dt/hour prefix after the cursor has moved past it: the sensor does not see it, but
compaction's hourly backstop picks it up (compaction works from its own state, not from keys).
"""

from datetime import UTC, datetime
from typing import Any

from dagster_aws.s3 import S3Resource

import dagster as dg
from sales_ops.defs.ingest.sources import CURSOR_ENTRY, LOOKBACK, last_tally, raw_files_version
from sales_ops.defs.internals import DATA_VERSION_TAG
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


def first_start(now: datetime | None = None) -> str:
    """Where the first tick (no cursor: a fresh Dagster home) lists from: the compaction horizon,
    not the start of raw/, which is kept for ever (issue 24, bug 7). Older objects are compacted
    already or, if not, by the hourly backstop from compaction's own state."""
    start = (now or datetime.now(UTC)) - LOOKBACK
    return f"{RAW_PREFIX}dt={start:%Y-%m-%d}/hour={start:%H}"


@dg.sensor(
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New objects under raw/orders/ → an observation of raw_orders_files (cursor: last key seen).",
)
def raw_objects_sensor(
    context: dg.SensorEvaluationContext, pipeline: PipelineResource, s3: S3Resource
) -> dg.SensorResult:
    start = context.cursor or first_start()
    objects = list_new_objects(s3.get_client(), pipeline.settings().bucket, RAW_PREFIX, start)
    if not objects:
        return dg.SensorResult(skip_reason=f"no new raw objects after {start}")
    newest = objects[-1]
    context.log.info(f"{len(objects)} new raw objects, newest {newest['Key']}")
    # The observable source reads its totals cursor from the latest observation: carry it forward.
    tally = last_tally(context.instance)
    carried = {CURSOR_ENTRY: tally.metadata_value()} if tally else {}
    observation = dg.AssetObservation(
        asset_key="raw_orders_files",
        description=f"{len(objects)} new raw object(s)",
        metadata={
            "new_objects": len(objects),
            "new_bytes": sum(obj["Size"] for obj in objects),
            "new_partitions": dg.MetadataValue.json(
                sorted({obj["Key"].rsplit("/", 1)[0] for obj in objects})[:50]
            ),
            "newest_object": newest["Key"],
            "newest_object_at": dg.MetadataValue.timestamp(newest["LastModified"]),
            **carried,
        },
        tags={DATA_VERSION_TAG: raw_files_version(newest["Key"]).value},
    )
    return dg.SensorResult(asset_events=[observation], cursor=newest["Key"])
