"""The streaming side as assets: the DynamoDB table and the raw S3 files (observed, not built by
Dagster: the Pipe and Firehose write them) and the Glue table `raw_orders` (built by the crawler).
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_ops.catalog.glue import RAW_TABLE
from sales_ops.defs.load import order_load
from sales_ops.defs.resources import CatalogResource, DynamoDBResource, PipelineResource
from sales_ops.settings import RAW_PREFIX

# Jobs that write the catalogue or orders_latest carry this tag; the run queue (the dagster.yaml
# written by sales_ops/local/devserver.py) runs them one at a time, so they queue instead of failing on
# the compaction's S3 lock.
WRITER_TAGS = {"sales_ops/writer": "catalog"}


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            "dynamodb_orders",
            deps=[order_load],
            group_name="ingest",
            kinds={"dynamodb"},
            description="The `orders` table (stream NEW_AND_OLD_IMAGES): the pipeline's source.",
        )
    ],
)
def dynamodb_orders(dynamodb: DynamoDBResource) -> dg.ObserveResult:
    table = dynamodb.describe()
    items = dynamodb.item_count()
    metadata: dict[str, Any] = {
        "items": items,
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
            description=f"JSON lines written by Firehose under {RAW_PREFIX}dt=…/hour=…/.",
        )
    ],
)
def raw_orders_files(pipeline: PipelineResource, s3: S3Resource) -> dg.ObserveResult:
    objects = list_objects(s3, pipeline.settings().bucket, RAW_PREFIX)
    metadata = raw_files_metadata(objects)
    # A new object changes the version, so the UI marks raw_orders_table as stale until crawled.
    version = f"{metadata['objects']}:{metadata.get('newest_object', '')}"
    metadata["location"] = dg.MetadataValue.url(pipeline.settings().s3_uri(RAW_PREFIX))
    return dg.ObserveResult(
        asset_key="raw_orders_files", metadata=metadata, data_version=dg.DataVersion(version)
    )


def table_schema(table: dict[str, Any]) -> dg.TableSchema:
    """A Glue table's columns (partition keys last, as Athena shows them) for the UI."""
    storage = table.get("StorageDescriptor", {}).get("Columns", [])
    partitions = table.get("PartitionKeys", [])
    return dg.TableSchema(
        columns=[
            dg.TableColumn(col["Name"], col.get("Type", "?"), description="partition key" if part else None)
            for part, cols in ((False, storage), (True, partitions))
            for col in cols
        ]
    )


class CrawlConfig(dg.Config):
    """`always`: crawl even when raw_orders exists (the crawl job, a manual run). The refresh job
    sets it to False: it crawls only to create the table."""

    always: bool = True


@dg.asset(
    deps=["raw_orders_files"],
    group_name="catalog",
    kinds={"glue"},
    description="Glue table `raw_orders` over the raw files, created and kept current by the crawler.",
)
def raw_orders_table(
    context: dg.AssetExecutionContext,
    catalog: CatalogResource,
    pipeline: PipelineResource,
    config: CrawlConfig,
) -> dg.MaterializeResult:
    settings = pipeline.settings()
    if not config.always and catalog.table(RAW_TABLE) is not None:
        # The compaction registers the new dt/hour partitions itself, and the raw schema is the
        # handler's fixed contract: a crawl (billed 10 minutes at least) would add nothing.
        context.log.info("raw_orders exists: no crawl (compaction registers new partitions)")
        return dg.MaterializeResult(
            metadata={"crawled": False, "partitions": catalog.partition_count(RAW_TABLE)}
        )
    report = catalog.crawler().run(wait=True)
    context.log.info(f"crawler: {report}")
    table = catalog.table(RAW_TABLE) or {}
    return dg.MaterializeResult(
        metadata={
            "crawled": True,
            "tables_created": report.tables_created,
            "tables_updated": report.tables_updated,
            "partitions_added": report.partitions_added,
            "columns_added": dg.MetadataValue.json(report.columns_added),
            "columns": len(report.columns),
            "crawl_seconds": round(report.seconds, 2),
            "partitions": catalog.partition_count(RAW_TABLE) if table else 0,
            "dagster/column_schema": table_schema(table),
            "dagster/table_name": f"{settings.database}.{RAW_TABLE}",
        }
    )


crawl_job = dg.define_asset_job(
    "crawl_job",
    selection=dg.AssetSelection.assets("raw_orders_files", raw_orders_table),
    tags=WRITER_TAGS,
    description="Observe the raw files and run the crawler so raw_orders has every partition.",
)

defs = dg.Definitions(assets=[dynamodb_orders, raw_orders_files, raw_orders_table], jobs=[crawl_job])
