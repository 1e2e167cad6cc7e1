"""Rollups of orders_latest, rebuilt whole as Parquet tables under curated/<rollup>/.

Each build writes a fresh version prefix `curated/<rollup>/v=<version>/`: a scratch Glue table with
the rollup's columns (`ROLLUP_COLUMNS`) is registered at that location and filled by an
`INSERT INTO … SELECT`, as the compaction does; the rollup's own Glue table is then pointed at it in
one `UpdateTable` (readers see the old or the new version, never a mix), the scratch name is
dropped, and versions older than the retention are removed. The SELECTs live in
`sql/rollup_<name>.sql`; the INSERT wrapper is here, once, for both engines.

Not a CTAS with `external_location`: the stack's workgroup enforces its configuration, and Athena
then fails any CTAS that names an external_location ("Considerations and limitations for CTAS
queries", https://docs.aws.amazon.com/athena/latest/ug/ctas-considerations-limitations.html). A
CTAS without it would write under the workgroup's athena-results/, which its lifecycle expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sales_ops.catalog import glue
from sales_ops.curated.compaction import new_version, version_time
from sales_ops.curated.lock import S3Lock
from sales_ops.load.shop import CATALOGUE_KEY
from sales_ops.query import SqlEngine, render_named
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import CURATED_PREFIX, Settings

ROLLUPS = ("sales_by_product_hourly", "customer_activity", "inventory_status")
PRODUCTS_TABLE = "products"
PRODUCT_COLUMNS = [
    ("product_id", "string"),
    ("product_name", "string"),
    ("category", "string"),
    ("unit_price", "double"),
    ("opening_stock", "int"),
]

# Each rollup's columns as its SQL produces them (name, Hive type, description): Dagster shows them
# before the first build, and Glue carries the descriptions as column comments. A test asserts
# that a real build registers exactly these names and types.
# The columns each rollup's SELECT produces, in order, with their descriptions (Hive types; sums of
# decimal(12,2) are decimal(38,2) in Athena/Trino and DuckDB alike).
ROLLUP_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "sales_by_product_hourly": (
        ("order_hour", "timestamp", "Hour of created_at (UTC)."),
        ("product_id", "string", COLUMN_DESCRIPTIONS["product_id"]),
        ("product_name", "string", COLUMN_DESCRIPTIONS["product_name"]),
        ("category", "string", COLUMN_DESCRIPTIONS["category"]),
        ("orders", "bigint", "Live orders placed in the hour."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("units", "bigint", "Units sold."),
        ("total_sales", "decimal(38,2)", "Amount sold (sum of order_total over sales)."),
    ),
    "customer_activity": (
        ("customer_id", "string", COLUMN_DESCRIPTIONS["customer_id"]),
        ("orders", "bigint", "Live orders of the customer."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("spend", "decimal(38,2)", "Amount spent (sum of order_total over sales)."),
        ("first_order_at", "timestamp", "created_at of the first live order."),
        ("last_order_at", "timestamp", "created_at of the latest live order."),
    ),
    "inventory_status": (
        ("product_id", "string", COLUMN_DESCRIPTIONS["product_id"]),
        ("product_name", "string", COLUMN_DESCRIPTIONS["product_name"]),
        ("category", "string", COLUMN_DESCRIPTIONS["category"]),
        ("units_sold_1h", "bigint", "Units sold in orders created in the last hour."),
        ("units_sold_24h", "bigint", "Units sold in orders created in the last 24 hours."),
        ("units_sold_7d", "bigint", "Units sold in orders created in the last 7 days."),
        ("units_sold", "bigint", "Units sold in all."),
        ("opening_stock", "bigint", "Stock in the product catalogue before any sale."),
        ("stock_left", "bigint", "opening_stock minus units sold."),
        ("as_of", "timestamp", "When the rollup was built."),
    ),
}
# A rollup build is a writer like compaction: one at a time per rollup, or two builds would drop
# each other's scratch table. Same lease as compaction, another key.
ROLLUP_LOCK_KEY = f"{CURATED_PREFIX}_state/rollup-{{name}}.lock"


def rollup_descriptions(name: str) -> dict[str, str]:
    return {column: description for column, _, description in ROLLUP_COLUMNS[name]}


@dataclass
class RollupReport:
    name: str
    rows: int
    bytes_written: int
    location: str
    seconds: float
    bytes_read: int = 0
    versions_removed: int = 0


def build_rollups(settings: Settings, engine: SqlEngine, retention_hours: float = 24) -> list[RollupReport]:
    return [build_rollup(settings, engine, name, retention_hours) for name in ROLLUPS]


def build_rollup(
    settings: Settings, engine: SqlEngine, name: str, retention_hours: float = 24
) -> RollupReport:
    """Rebuild one rollup into a new version and point its table at it, under the rollup's S3 lease
    (CompactionLocked if another build of it is running)."""
    if name not in ROLLUPS:
        raise ValueError(f"unknown rollup {name!r}; known: {', '.join(ROLLUPS)}")
    with S3Lock(settings, ROLLUP_LOCK_KEY.format(name=name)).held():
        return _build_rollup(settings, engine, name, retention_hours)


def _build_rollup(settings: Settings, engine: SqlEngine, name: str, retention_hours: float) -> RollupReport:
    started = time.monotonic()
    if name == "inventory_status":
        ensure_products_table(settings)
    prefix = f"{CURATED_PREFIX}{name}/"
    location = settings.s3_uri(f"{prefix}v={new_version()}/")
    scratch = f"{name}__build"
    glue.delete_table(settings, scratch)  # left by a crashed build: its files are unreferenced
    body = render_named(f"rollup_{name}", settings.database)
    columns = [(column, type_) for column, type_, _ in ROLLUP_COLUMNS[name]]
    descriptions = rollup_descriptions(name)
    # An enforced workgroup refuses CTAS with external_location (Athena's CTAS considerations:
    # https://docs.aws.amazon.com/athena/latest/ug/ctas-considerations-limitations.html), so the
    # build fills a scratch table registered at the new location, then the rollup points there.
    glue.put_table(settings, glue.parquet_table_input(scratch, columns, location))
    try:
        result = engine.execute(f"INSERT INTO {settings.database}.{scratch}\n{body}")
        glue.put_table(settings, glue.parquet_table_input(name, columns, location, descriptions=descriptions))
    finally:
        glue.delete_table(settings, scratch)
    rows = engine.query(f"SELECT count(*) FROM {settings.database}.{name}")
    written = sum(size for key, size in _objects(settings, location) if not key.endswith("/"))
    removed = _remove_old_versions(settings, prefix, location, timedelta(hours=retention_hours))
    return RollupReport(
        name=name,
        rows=int(rows.rows[0][0]),
        bytes_written=written,
        location=location,
        seconds=time.monotonic() - started,
        bytes_read=result.bytes_scanned + rows.bytes_scanned,
        versions_removed=removed,
    )


def ensure_products_table(settings: Settings) -> None:
    """The product catalogue the load publishes (reference/products/), as a JSON table."""
    location = settings.s3_uri(CATALOGUE_KEY.rsplit("/", 1)[0] + "/")
    if glue.get_table(settings, PRODUCTS_TABLE) is None:
        glue.put_table(settings, glue.json_table_input(PRODUCTS_TABLE, PRODUCT_COLUMNS, location))


def _objects(settings: Settings, uri: str) -> list[tuple[str, int]]:
    prefix = uri.removeprefix(f"s3://{settings.bucket}/")
    paginator = settings.client("s3").get_paginator("list_objects_v2")
    out = []
    for page in paginator.paginate(Bucket=settings.bucket, Prefix=prefix):
        out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return out


def _remove_old_versions(settings: Settings, prefix: str, current: str, retention: timedelta) -> int:
    """Delete versions older than the current one whose successor is older than the retention."""
    cutoff = datetime.now(UTC) - retention
    by_version: dict[str, list[str]] = {}
    for key, _ in _objects(settings, settings.s3_uri(prefix)):
        part = key[len(prefix) :].split("/", 1)[0]
        if part.startswith("v="):
            by_version.setdefault(part[2:], []).append(key)
    keep = current.rstrip("/").rsplit("v=", 1)[-1]
    versions = sorted(by_version)
    doomed = []
    for i, version in enumerate(versions):
        successor = versions[i + 1] if i + 1 < len(versions) else version
        written = version_time(successor)
        if version != keep and written is not None and written <= cutoff:
            doomed.append(version)
    keys = [{"Key": k} for v in doomed for k in by_version[v]]
    s3 = settings.client("s3")
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    return len(doomed)
