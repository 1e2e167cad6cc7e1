"""The Glue table `raw_orders` over the raw files, built by the crawler (local stand-in or Glue)."""

from typing import Any

import dagster as dg

from sales_ops.catalog.glue import RAW_TABLE
from sales_ops.defs.resources import CatalogResource, PipelineResource

# Jobs that write the catalogue or orders_latest carry this tag; the run queue (the dagster.yaml
# written by sales_ops/local/devserver.py) runs them one at a time, so they queue instead of failing on
# the compaction's S3 lock.
WRITER_TAGS = {"sales_ops/writer": "catalog"}


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


@dg.asset(
    deps=["raw_orders_files"],
    group_name="catalog",
    kinds={"glue"},
    description="Glue table `raw_orders` over the raw files, created and kept current by the crawler.",
)
def raw_orders_table(
    context: dg.AssetExecutionContext, catalog: CatalogResource, pipeline: PipelineResource
) -> dg.MaterializeResult:
    report = catalog.crawler().run(wait=True)
    context.log.info(f"crawler: {report}")
    table = catalog.table(RAW_TABLE) or {}
    settings = pipeline.settings()
    return dg.MaterializeResult(
        metadata={
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
