"""The Glue table `raw_orders` over the raw files, built by the crawler (local stand-in or Glue)."""

import dagster as dg
from sales_ops.catalog.glue import RAW_PARTITION_KEYS, RAW_TABLE
from sales_ops.defs import policies
from sales_ops.defs.resources import CatalogResource, PipelineResource
from sales_ops.defs.tables import table_metadata, table_schema
from sales_ops.schema import RAW_COLUMNS

# What the crawler is expected to find (numbers are typed by the values it sees: a family).
RAW_SCHEMA = [(c.name, "|".join(sorted(c.raw_types))) for c in RAW_COLUMNS] + list(RAW_PARTITION_KEYS)


@dg.asset(
    deps=["raw_orders_files"],
    group_name="catalog",
    kinds={"glue"},
    description=(
        "Glue table `raw_orders` over the raw files, created by the crawler. Compaction registers "
        "new dt/hour partitions itself, so the automation crawls only when the table is missing; "
        "materialize it by hand after a schema change (the raw_schema check tells)."
    ),
    pool=policies.WRITER_POOL,
    retry_policy=policies.WRITER_RETRY,
    automation_condition=policies.CRAWL_WHEN_MISSING,
    owners=policies.OWNERS,
    metadata=table_metadata(RAW_TABLE, RAW_SCHEMA),
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
