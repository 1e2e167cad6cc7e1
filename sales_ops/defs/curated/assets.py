"""Curated tables: `orders_latest` (incremental compaction of the raw events) and the rollups."""

from decimal import Decimal
from typing import Any

import dagster as dg
from sales_ops.catalog import glue
from sales_ops.curated.compaction import compact
from sales_ops.curated.rollups import (
    HOURLY_ROLLUPS,
    ROLLUP_COLUMNS,
    ROLLUPS,
    build_rollup,
    rollup_descriptions,
)
from sales_ops.curated.tables import COLUMNS
from sales_ops.defs import policies
from sales_ops.defs.resources import CatalogResource, PipelineResource, SqlEngineResource
from sales_ops.defs.tables import table_metadata, table_schema
from sales_ops.query import SqlEngine

LATEST_TABLE = "orders_latest"
TOP_PRODUCTS = 5
# The rollup whose page also shows the best sellers (from the `total_sales_by_product` named query).
PRODUCT_ROLLUP = "sales_by_product_hourly"


class CompactionConfig(dg.Config):
    full: bool = False  # rebuild every partition from all raw events (same result, more work)
    retention_hours: int = 24  # older table versions are removed after this


def markdown_table(columns: list[str], rows: list[Any], limit: int) -> str:
    """A small markdown table for the UI (rows as tuples, first `limit` of them)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows[:limit]]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}"
    return str(value).replace("|", "\\|")


# Compaction reads the raw objects itself (it lists them and registers their partitions), and
# needs the raw_orders table: both are its inputs. A new raw-files observation triggers it. The
# backfill rewrites it too: a dep for the lineage, which its automation ignores (policies.COMPACT).
@dg.asset(
    deps=["raw_orders_table", "raw_orders_files", "orders_backfill"],
    group_name="curated",
    kinds={"sql", "parquet"},
    description=(
        "One row per live order (latest event by sequence number, deletes removed), Parquet "
        "partitioned by order_date. Incremental: only partitions touched by new raw events are rewritten."
    ),
    pool=policies.WRITER_POOL,
    retry_policy=policies.WRITER_RETRY,
    automation_condition=policies.COMPACT,
    freshness_policy=policies.CURATED_FRESHNESS,
    owners=policies.OWNERS,
    metadata=table_metadata(LATEST_TABLE, [*COLUMNS, ("order_date", "date")]),
)
def orders_latest(
    context: dg.AssetExecutionContext,
    config: CompactionConfig,
    pipeline: PipelineResource,
    sql: SqlEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    settings = pipeline.settings()
    with sql.engine() as engine:
        report = compact(
            settings,
            engine,
            full=config.full,
            retention_hours=config.retention_hours,
            progress=context.log.info,  # passes of a rebuild past the scan cutoff
        )
    context.log.info(f"compaction: {report}")
    metadata: dict[str, Any] = {
        "rows": report.rows,
        "dagster/row_count": report.rows,
        "partitions_rewritten": len(report.partitions_rewritten),
        "partitions": dg.MetadataValue.json(sorted(report.partitions_rewritten)),
        "deltas_written": dg.MetadataValue.json(report.deltas_written),
        "delta_rows": report.delta_rows,
        "dates_changed": dg.MetadataValue.json(report.dates_changed),
        "deltas_folded": len(report.folded),
        "changes_rejected": report.rejected,
        "statements": report.statements,
        "new_raw_objects": report.new_objects,
        "passes": report.passes,
        "bytes_read": report.bytes_read,
        "bytes_written": report.bytes_written,
        "watermark_before": str(report.watermark_before),
        "watermark_after": str(report.watermark_after),
        "versions_removed": report.versions_removed,
        "quarantined_raw_objects": dg.MetadataValue.json(report.quarantined),
        "version": str(report.version),
        "seconds": round(report.seconds, 2),
        "full_rebuild": config.full,
        "dagster/table_name": f"{settings.database}.{LATEST_TABLE}",
    }
    table = catalog.table(LATEST_TABLE)
    if table:
        metadata["dagster/column_schema"] = table_schema(table)
    return dg.MaterializeResult(metadata=metadata)


def top_products(engine: SqlEngine, limit: int = TOP_PRODUCTS) -> str:
    """The best sellers by total sales, as a markdown table."""
    result = engine.named("total_sales_by_product")
    rank = list(result.columns).index("total_sales")
    rows = sorted(result.rows, key=lambda row: float(row[rank] or 0), reverse=True)
    return markdown_table(list(result.columns), rows, limit)


def _rollup_asset(name: str) -> dg.AssetsDefinition:
    columns = [(column, type_) for column, type_, _ in ROLLUP_COLUMNS[name]]
    descriptions = rollup_descriptions(name)
    hourly = name in HOURLY_ROLLUPS

    @dg.asset(
        name=name,
        deps=[orders_latest],
        group_name="curated",
        kinds={"sql", "parquet"},
        description=f"Rollup `{name}` rebuilt from orders_latest{' every hour' if hourly else ''}.",
        pool=policies.WRITER_POOL,
        retry_policy=policies.WRITER_RETRY,
        automation_condition=policies.HOURLY_ROLLUP if hourly else policies.ROLLUP,
        freshness_policy=policies.CURATED_FRESHNESS,
        owners=policies.OWNERS,
        metadata=table_metadata(name, columns, descriptions),
    )
    def _rollup(
        context: dg.AssetExecutionContext, pipeline: PipelineResource, sql: SqlEngineResource
    ) -> dg.MaterializeResult:
        with sql.engine() as engine:
            report = build_rollup(pipeline.settings(), engine, name)
            context.log.info(f"rollup: {report}")
            metadata: dict[str, Any] = {
                "rows": report.rows,
                "dagster/row_count": report.rows,
                "bytes_read": report.bytes_read,
                "bytes_written": report.bytes_written,
                "versions_removed": report.versions_removed,
                "dates_rebuilt": len(report.dates_rebuilt),
                "statements": report.statements,
                "location": dg.MetadataValue.url(report.location),
                "seconds": round(report.seconds, 2),
                "dagster/table_name": f"{pipeline.settings().database}.{name}",
            }
            table = glue.get_table(pipeline.settings(), name)
            if table:
                metadata["dagster/column_schema"] = table_schema(table, descriptions)
            if name == PRODUCT_ROLLUP:
                metadata["top_products"] = dg.MetadataValue.md(top_products(engine))
        return dg.MaterializeResult(metadata=metadata)

    return _rollup


rollup_assets = [_rollup_asset(name) for name in ROLLUPS]
