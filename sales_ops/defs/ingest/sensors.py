"""The raw-objects sensor: new raw objects → an observation of `raw_orders_files`.

It launches no run itself. The observation carries the newest key as the data version, and the
declarative automation (policies.py) decides what that new data asks for: compaction, the
rollups after it, and a crawl only if `raw_orders` is missing. The asset's Automation tab then
says why each one ran or did not.

The cursor is the delivery position (`sales_ops/raw_objects.py`) of the newest object seen: its
dt/hour partition, delivery time and stream version. Keys do not sort by time (Firehose puts the
delivery stream's version in the name, and `-10-` sorts before `-9-`), so a tick lists from the
start of the cursor's partition (`StartAfter`), never the whole prefix, and keeps what is
positioned after the cursor. Partitions are time-ordered, so later ones list after it. The
exception is a late event that lands in an older dt/hour prefix after the cursor has moved past
it: the sensor does not see it, but compaction's hourly backstop picks it up (compaction works
from its own state, not from keys).
"""

from datetime import UTC, datetime
from typing import Any

from dagster_aws.s3 import S3Resource

import dagster as dg
from sales_ops.defs.ingest.listing import MAX_KEYS_PER_TICK, list_new_objects
from sales_ops.defs.ingest.sources import CURSOR_ENTRY, LOOKBACK, last_tally, raw_files_version
from sales_ops.defs.internals import DATA_VERSION_TAG
from sales_ops.defs.resources import PipelineResource
from sales_ops.raw_objects import delivery_position, position_folder
from sales_ops.settings import RAW_PREFIX

INTERVAL_S = 30


def first_start(now: datetime | None = None) -> str:
    """Where the first tick (no cursor: a fresh Dagster home) lists from: the compaction horizon,
    not the start of raw/, which is kept for ever (issue 24, bug 7). Older objects are compacted
    already or, if not, by the hourly backstop from compaction's own state."""
    start = (now or datetime.now(UTC)) - LOOKBACK
    return f"@{RAW_PREFIX}dt={start:%Y-%m-%d}/hour={start:%H}///"  # a position before its objects


def new_raw_objects(
    client: Any, bucket: str, cursor: str | None, limit: int = MAX_KEYS_PER_TICK
) -> tuple[list[dict[str, Any]], str | None]:
    """Raw objects positioned after `cursor` (a delivery position; an older cursor that is a raw
    key is read as that key's position), in delivery order, and the new cursor."""
    after = delivery_position(cursor) if cursor and cursor.startswith(RAW_PREFIX) else cursor
    start = position_folder(after) + "/" if after else None
    listed = list_new_objects(client, bucket, RAW_PREFIX, start, limit + 1)
    if len(listed) > limit:  # a cut listing: keep whole partitions (the last may be incomplete)
        folders = {obj["Key"].rsplit("/", 1)[0] for obj in listed}
        last = listed[-1]["Key"].rsplit("/", 1)[0]
        listed = [o for o in listed[:limit] if len(folders) == 1 or o["Key"].rsplit("/", 1)[0] != last]
    positioned = sorted((delivery_position(o["Key"], o["LastModified"]), i) for i, o in enumerate(listed))
    fresh = [(pos, listed[i]) for pos, i in positioned if after is None or pos > after]
    return [o for _, o in fresh], (fresh[-1][0] if fresh else after)


@dg.sensor(
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "New objects under raw/orders/ → an observation of raw_orders_files "
        "(cursor: the newest object's delivery position)."
    ),
)
def raw_objects_sensor(
    context: dg.SensorEvaluationContext, pipeline: PipelineResource, s3: S3Resource
) -> dg.SensorResult:
    start = context.cursor or first_start()
    objects, cursor = new_raw_objects(s3.get_client(), pipeline.settings().bucket, start)
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
    return dg.SensorResult(asset_events=[observation], cursor=cursor)
