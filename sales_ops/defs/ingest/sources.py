"""The streaming side as observed assets: the DynamoDB table and the raw S3 files. Dagster does not
build them (the load, the Pipe and Firehose write them); it observes them.
"""

from datetime import UTC, datetime
from typing import Any

from dagster_aws.s3 import S3Resource

import dagster as dg
from sales_ops.defs import policies
from sales_ops.defs.ingest.load import order_load
from sales_ops.defs.resources import DynamoDBResource, PipelineResource
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
    """The raw files' data version: the newest key. Firehose names objects by time under
    time-ordered prefixes, so a new object changes it, and eager downstream assets run."""
    return dg.DataVersion(newest_key or "empty")


def list_objects(s3: S3Resource, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under `prefix` (for totals: the sensors list only what is new)."""
    pages = s3.get_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]


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


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            "raw_orders_files",
            deps=["dynamodb_orders"],
            group_name="ingest",
            kinds={"s3"},
            description=(
                f"JSON lines written by Firehose under {RAW_PREFIX}dt=…/hour=…/. Observed by the "
                "raw_objects_sensor (new keys only) and on demand."
            ),
            owners=policies.OWNERS,
        )
    ],
)
def raw_orders_files(pipeline: PipelineResource, s3: S3Resource) -> dg.ObserveResult:
    objects = list_objects(s3, pipeline.settings().bucket, RAW_PREFIX)
    metadata = raw_files_metadata(objects)
    metadata["location"] = dg.MetadataValue.url(pipeline.settings().s3_uri(RAW_PREFIX))
    newest_key = max((obj["Key"] for obj in objects), default="")
    return dg.ObserveResult(
        asset_key="raw_orders_files", metadata=metadata, data_version=raw_files_version(newest_key)
    )
