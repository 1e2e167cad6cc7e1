"""The streaming side as observed assets: the DynamoDB table and the raw S3 files. Dagster does not
build them (the load, the Pipe and Firehose write them); it observes them.
"""

import sys
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster_aws.s3 import S3Resource

import dagster as dg
from sales_ops.curated.state import LOOKBACK_HOURS, horizon
from sales_ops.defs import policies
from sales_ops.defs.ingest.listing import list_new_objects
from sales_ops.defs.ingest.load import order_load
from sales_ops.defs.resources import DynamoDBResource, PipelineResource
from sales_ops.raw_objects import delivery_position
from sales_ops.settings import RAW_PREFIX


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            "dynamodb_orders",
            deps=[order_load],
            group_name="ingest",
            kinds={"dynamodb"},
            description="The `orders` table (stream NEW_AND_OLD_IMAGES): the pipeline's source.",
            automation_condition=policies.every("*/15 * * * *", "observe every 15 minutes"),
            owners=policies.OWNERS,
        )
    ],
)
def dynamodb_orders(dynamodb: DynamoDBResource) -> dg.ObserveResult:
    table = dynamodb.describe()
    items = dynamodb.item_count()  # never a scan on aws: DescribeTable's ItemCount
    metadata: dict[str, Any] = {
        "items": items.items,
        "items_approximate": items.approximate,
        "table_size_bytes": table.get("TableSizeBytes", 0),
        "stream_view_type": table.get("StreamSpecification", {}).get("StreamViewType", "none"),
    }
    lags = dynamodb.monitor().lag()
    ages = [lag.age_s for lag in lags if lag.age_s is not None]
    # The headline number: the age of the oldest change not yet in S3 (0 when all is delivered).
    metadata["stream_lag_s"] = max(ages, default=0.0)
    for lag in lags:
        if lag.pending_records is not None:
            metadata[f"{lag.stage}_pending_records"] = lag.pending_records
        metadata[f"{lag.stage}_lag_s"] = lag.age_s if lag.age_s is not None else 0.0
    # No data version: an item count does not change on updates, so it would be a misleading one.
    return dg.ObserveResult(asset_key="dynamodb_orders", metadata=metadata)


def raw_files_version(newest_key: str) -> dg.DataVersion:
    """The raw files' data version: the key of the newest object by delivery position
    (`sales_ops/raw_objects.py`), so a new object changes it, and eager downstream assets run."""
    return dg.DataVersion(newest_key or "empty")


def raw_files_metadata(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Objects, bytes, hive partitions and the newest object of a raw listing."""
    metadata: dict[str, Any] = {
        "objects": len(objects),
        "bytes": sum(obj["Size"] for obj in objects),
        "partitions": len({obj["Key"].rsplit("/", 1)[0] for obj in objects}),
    }
    if objects:
        newest = max(objects, key=lambda obj: (obj["LastModified"], obj["Key"]))
        metadata["newest_object"] = newest["Key"]
        metadata["newest_object_at"] = dg.MetadataValue.timestamp(newest["LastModified"])
        metadata["newest_object_age_s"] = round(
            (datetime.now(UTC) - newest["LastModified"]).total_seconds(), 1
        )
    return metadata


# raw/ is kept for ever, so an observation lists only from a horizon on: the newest dt/hour partition
# minus LOOKBACK. Firehose names the prefix by event time, so a delayed event lands in an older hour;
# the horizon stays that far behind (compaction keeps the same 72 h, beyond the 24 h of DynamoDB
# Streams and Kinesis retention). What lies before it is carried forward as running totals.
LOOKBACK = timedelta(hours=LOOKBACK_HOURS)
CURSOR_ENTRY = "cursor"  # the metadata entry that carries the totals to the next observation


@dataclass(frozen=True)
class RawTally:
    """Totals of the raw objects whose keys sort before `horizon` (`raw/orders/dt=…/hour=…`, or
    "" for none: then everything is listed)."""

    horizon: str = ""
    objects: int = 0
    bytes: int = 0
    partitions: int = 0

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "RawTally | None":
        entry = metadata.get(CURSOR_ENTRY)
        value = getattr(entry, "value", entry)
        if not isinstance(value, dict) or set(value) != {f.name for f in fields(cls)}:
            return None  # none, or another shape: the next observation lists everything once
        return cls(**value)

    def metadata_value(self) -> dg.MetadataValue:
        return dg.MetadataValue.json(asdict(self))


def last_tally(instance: dg.DagsterInstance) -> RawTally | None:
    """The cursor of the latest observation of raw_orders_files (the sensor's carry it forward)."""
    records = instance.fetch_observations(dg.AssetKey("raw_orders_files"), limit=1).records
    observation = records[0].asset_observation if records else None
    return RawTally.from_metadata(dict(observation.metadata)) if observation else None


def _horizon(keys: list[str]) -> str:
    """The raw key the next observation lists from: the newest partition minus the lookback."""
    start = horizon(keys, LOOKBACK)
    return f"{RAW_PREFIX}{start}" if start else ""


def observe_raw_files(client: Any, bucket: str, previous: RawTally | None) -> tuple[dict[str, Any], str]:
    """Metadata of all raw objects and the greatest key, listing only from `previous.horizon` on.

    The horizon is a partition boundary, so the partitions before it and after it are disjoint and
    the totals add up. Objects landing before the horizon after it moved (later than LOOKBACK) are
    not counted; nor does anything else list them again (compaction's lookback is the same)."""
    start = previous or RawTally()
    objects = list_new_objects(client, bucket, RAW_PREFIX, start.horizon or None, limit=sys.maxsize)
    if start.horizon and not objects:  # raw/ was emptied under the cursor: count from scratch
        return observe_raw_files(client, bucket, None)
    metadata = raw_files_metadata(objects)
    metadata["objects"] += start.objects
    metadata["bytes"] += start.bytes
    metadata["partitions"] += start.partitions
    horizon = max(start.horizon, _horizon([obj["Key"] for obj in objects]))
    settled = raw_files_metadata([obj for obj in objects if obj["Key"] < horizon])
    tally = RawTally(
        horizon,
        start.objects + settled["objects"],
        start.bytes + settled["bytes"],
        start.partitions + settled["partitions"],
    )
    metadata[CURSOR_ENTRY] = tally.metadata_value()
    # The newest by delivery position, as the sensor's data version (keys do not sort by time).
    newest = max(objects, key=lambda obj: delivery_position(obj["Key"], obj["LastModified"]), default=None)
    return metadata, newest["Key"] if newest else ""


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            "raw_orders_files",
            deps=["dynamodb_orders"],
            group_name="ingest",
            kinds={"s3"},
            description=(
                f"JSON lines written by Firehose under {RAW_PREFIX}dt=…/hour=…/. Observed by the "
                "raw_objects_sensor (new keys only) and on demand (totals from a cursor: "
                "only the last 72 h of partitions are listed)."
            ),
            owners=policies.OWNERS,
        )
    ],
)
def raw_orders_files(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, s3: S3Resource
) -> dg.ObserveResult:
    previous = last_tally(context.instance)
    metadata, newest_key = observe_raw_files(s3.get_client(), pipeline.settings().bucket, previous)
    metadata["location"] = dg.MetadataValue.url(pipeline.settings().s3_uri(RAW_PREFIX))
    return dg.ObserveResult(
        asset_key="raw_orders_files", metadata=metadata, data_version=raw_files_version(newest_key)
    )
