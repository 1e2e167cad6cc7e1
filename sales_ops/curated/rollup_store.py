"""Where rollups keep what they build (docs/design.md §2.7): their columns, their versions in S3
and Glue, their state objects, and the removal of superseded versions.

Every build writes a fresh version (`curated/<rollup>/v=<version>/`, or
`curated/<rollup>/order_date=D/v=<version>/` for a by-date rollup) through a table registered at
that location, then points the rollup's table or partitions at it; readers see the old or the new
version. Each version of an unpartitioned rollup is also a partition of `<rollup>__versions`
(partition v), so that a reader can name the build a state records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sales_ops.catalog import glue
from sales_ops.curated.tables import delete_keys, list_sizes, new_version, version_time
from sales_ops.query import Sql, SqlEngine, literal
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import CURATED_PREFIX, Settings, error_code

ROLLUP_STATE_KEY = f"{CURATED_PREFIX}_state/rollup-{{name}}.json"
PARTITIONS_PER_WRITE = 100  # Athena's INSERT INTO writes at most 100 partitions
# Parquet bytes a by-date build reads per orders_latest row (the columns a rollup uses): measured
# ~25 B at scale on the mock shop (bench/bench_history.py), taken at about twice that.
BYTES_PER_LATEST_ROW = 48
# And per date whatever its rows: the footers and metadata of its base, tombstone and delta files
# (~5-8 KB measured on small dates, where they are most of a read).
BYTES_PER_DATE = 8192

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
        ("orders", "bigint", "Live orders of the customer created in the last 30 days (today included)."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("spend", "decimal(38,2)", "Amount spent (sum of order_total over sales)."),
        ("first_order_at", "timestamp", "created_at of the customer's first live order in those days."),
        ("last_order_at", "timestamp", "created_at of the customer's latest live order in those days."),
    ),
    "customer_activity_daily": (
        ("customer_id", "string", COLUMN_DESCRIPTIONS["customer_id"]),
        ("orders", "bigint", "Live orders of the customer created that day."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("spend", "decimal(38,2)", "Amount spent (sum of order_total over sales)."),
        ("first_order_at", "timestamp", "created_at of the day's first live order."),
        ("last_order_at", "timestamp", "created_at of the day's latest live order."),
    ),
    "customer_segments": (
        ("segment", "string", "new (one live order in the window) or returning (two or more)."),
        ("customers", "bigint", "Customers of the segment, in the pass's buckets."),
        ("orders", "bigint", "Their live orders."),
        ("spend", "decimal(38,2)", "Their spend (sum of order_total over sales)."),
    ),
    "sales_daily": (
        ("kind", "string", "What `value` is: product (name), category, channel, region, or all."),
        ("value", "string", "The product name, category, channel or region; empty for kind all."),
        ("live_orders", "bigint", "Live orders created that day."),
        ("orders", "bigint", "Of those, sales (not cancelled or returned)."),
        ("units", "bigint", "Units sold."),
        ("total_sales", "decimal(38,2)", "Amount sold (sum of order_total over sales)."),
        ("newest_event_time", "string", "The newest change among those orders (event time)."),
    ),
    "sales_totals": (
        ("kind", "string", "What `value` is: product (name), category, channel, region, or all."),
        ("value", "string", "The product name, category, channel or region; empty for kind all."),
        ("live_orders", "bigint", "Live orders."),
        ("orders", "bigint", "Of those, sales (not cancelled or returned)."),
        ("units", "bigint", "Units sold."),
        ("total_sales", "decimal(38,2)", "Amount sold (sum of order_total over sales)."),
        ("newest_event_time", "string", "The newest change seen live (never moves back)."),
    ),
    "inventory_status": (
        ("product_id", "string", COLUMN_DESCRIPTIONS["product_id"]),
        ("product_name", "string", COLUMN_DESCRIPTIONS["product_name"]),
        ("category", "string", COLUMN_DESCRIPTIONS["category"]),
        ("units_sold_1h", "bigint", "Units sold in orders created since the hour that holds now - 1 h."),
        ("units_sold_24h", "bigint", "Units sold in orders created since the hour that holds now - 24 h."),
        ("units_sold_7d", "bigint", "Units sold in orders created since the hour that holds now - 7 d."),
        ("units_sold", "bigint", "Units sold in all."),
        ("opening_stock", "bigint", "Stock in the product catalogue before any sale."),
        ("stock_left", "bigint", "opening_stock minus units sold."),
        ("as_of", "timestamp", "When the rollup was built."),
    ),
}


def write_chunks(
    dates: list[date], buckets: int, rows: dict[date, int], budget: int
) -> list[tuple[list[date], int, int]]:
    """(dates, first bucket, last bucket) of each INSERT of a by-date build: at most 100 partitions
    each (dates x buckets), and dates whose orders_latest rows (`rows`, estimated at
    BYTES_PER_LATEST_ROW, plus BYTES_PER_DATE) fit the budget together; a date bigger than that
    is written alone."""
    per_date = min(buckets, PARTITIONS_PER_WRITE)
    most = max(1, PARTITIONS_PER_WRITE // per_date)
    groups: list[list[date]] = []
    total = 0
    for day in dates:
        size = BYTES_PER_DATE + rows.get(day, 0) * BYTES_PER_LATEST_ROW
        if not groups or len(groups[-1]) >= most or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(day)
        total += size
    return [
        (group, low, min(low + per_date, buckets) - 1)
        for group in groups
        for low in range(0, buckets, per_date)
    ]


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
    dates_rebuilt: list[str] = field(default_factory=list)  # by-date rollups: partitions rewritten
    full: bool = False  # running totals: added up from every date (no usable ledger)
    statements: int = 0


@dataclass
class Counted:
    """A rollup build's statements and bytes scanned."""

    engine: SqlEngine
    bytes_read: int = 0
    statements: int = 0

    def run(self, sql: str) -> Any:
        result = self.engine.execute(sql)
        self.bytes_read += result.bytes_scanned
        self.statements += 1
        return result


def load_state(settings: Settings, name: str) -> dict[str, Any]:
    try:
        body = settings.client("s3").get_object(
            Bucket=settings.bucket, Key=ROLLUP_STATE_KEY.format(name=name)
        )
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return {}
        raise
    return dict(json.loads(body["Body"].read()))


def save_state(settings: Settings, name: str, state: dict[str, Any]) -> None:
    settings.client("s3").put_object(
        Bucket=settings.bucket, Key=ROLLUP_STATE_KEY.format(name=name), Body=json.dumps(state).encode()
    )


def list_objects(settings: Settings, uri: str) -> list[tuple[str, int]]:
    return list_sizes(settings, uri.removeprefix(f"s3://{settings.bucket}/"))


def register_version(settings: Settings, name: str, location: str) -> None:
    """Each version of a running total is also a partition of `<name>__versions` (partition v), so
    that a reader can name the one a state records: the table itself moves on at the next build."""
    versions = f"{name}__versions"
    table = glue.get_table(settings, versions)
    if table is None:
        columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]]
        root = settings.s3_uri(f"{CURATED_PREFIX}{name}/")
        glue.put_table(settings, glue.parquet_table_input(versions, columns, root, [("v", "string")]))
        table = glue.require_table(settings, versions)
    version = version_in(location)
    glue.put_partitions(settings, table, [glue.partition_input(table, [version], location)])


def rows_written(result: Any) -> int:
    try:
        return int(result.rows[0][0])
    except (IndexError, TypeError, ValueError):
        return 0


def version_of(partition: dict[str, Any]) -> str:
    return version_in(str(partition["StorageDescriptor"]["Location"]))


def version_in(location: str) -> str:
    """The version a rollup's location names (`…/v=<version>/`, a bucket's `…/v=<version>/bucket=N/`)."""
    return location.rstrip("/").rsplit("/v=", 1)[-1].split("/", 1)[0]


def version_pairs(versions: dict[str, str]) -> Sql:
    """WHERE fragment on a <rollup>__versions table: exactly these (order_date, v) partitions."""
    if not versions:
        return Sql("FALSE")
    dates = ", ".join(literal(date.fromisoformat(d)) for d in sorted(versions))
    names = literal(sorted(set(versions.values())), top=True)
    each = " OR ".join(
        f"(order_date = {literal(date.fromisoformat(d))} AND v = {literal(v)})"
        for d, v in sorted(versions.items())
    )
    return Sql(f"order_date IN ({dates}) AND v IN ({names}) AND ({each})")


def write_version(
    settings: Settings,
    counted: Counted,
    name: str,
    passes: list[str],
    retention_hours: float,
    started: float,
    after_pass: Callable[[str, list[str]], None] | None = None,
) -> RollupReport:
    """One unpartitioned version of a rollup, filled through a scratch table by one INSERT per
    pass (each pass's SELECT: `passes`), then swapped in. `after_pass(version, files)`: called with
    the files each pass wrote (a summary of them, sales_ops/curated/customers.py)."""
    prefix = f"{CURATED_PREFIX}{name}/"
    location = settings.s3_uri(f"{prefix}v={new_version()}/")
    scratch = f"{name}__build"
    glue.delete_table(settings, scratch)  # left by a crashed build: its files are unreferenced
    columns = [(column, type_) for column, type_, _ in ROLLUP_COLUMNS[name]]
    descriptions = rollup_descriptions(name)
    # An enforced workgroup refuses CTAS with external_location (Athena's CTAS considerations:
    # https://docs.aws.amazon.com/athena/latest/ug/ctas-considerations-limitations.html), so the
    # build fills a scratch table registered at the new location, then the rollup points there.
    glue.put_table(settings, glue.parquet_table_input(scratch, columns, location))
    rows, seen = 0, set[str]()
    try:
        for body in passes:
            rows += rows_written(counted.run(f"INSERT INTO {settings.database}.{scratch}\n{body}"))
            if after_pass is not None:
                files = {settings.s3_uri(key) for key, size in list_objects(settings, location) if size}
                after_pass(version_in(location), sorted(files - seen))
                seen |= files
        register_version(settings, name, location)
        glue.put_table(settings, glue.parquet_table_input(name, columns, location, descriptions=descriptions))
    finally:
        glue.delete_table(settings, scratch)
    written = sum(size for key, size in list_objects(settings, location) if not key.endswith("/"))
    removed = remove_old_versions(settings, name, location, timedelta(hours=retention_hours))
    return RollupReport(
        name=name,
        rows=rows,
        bytes_written=written,
        location=location,
        seconds=time.monotonic() - started,
        bytes_read=counted.bytes_read,
        versions_removed=removed,
        statements=counted.statements,
    )


def fresh_slices_table(settings: Settings, name: str, bucketed: bool) -> str:
    """`<name>__slices`, empty: where a by-date build of `name` writes the sums of each slice of
    the orders before adding them up (rollups.write_dates), partitioned like `<name>__versions`
    (`bucketed`: customer_activity's partials, by bucket too),
    v naming one slice's statement. Emptied before and after each use (a crashed build's rows are
    never read: the build's lease keeps a second build out meanwhile)."""
    scratch = f"{name}__slices"
    drop_slices_table(settings, name)
    columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]]
    location = settings.s3_uri(f"{CURATED_PREFIX}_scratch/{name}/")
    keys = [("order_date", "date"), ("v", "string"), *([("bucket", "int")] if bucketed else [])]
    glue.put_table(settings, glue.parquet_table_input(scratch, columns, location, keys))
    return scratch


def drop_slices_table(settings: Settings, name: str) -> None:
    """`<name>__slices` and its files gone."""
    glue.delete_table(settings, f"{name}__slices")
    scratch = settings.s3_uri(f"{CURATED_PREFIX}_scratch/{name}/")
    delete_keys(settings, [key for key, _ in list_objects(settings, scratch)])


def remove_old_versions(settings: Settings, name: str, current: str, retention: timedelta) -> int:
    """Delete versions older than the current one whose successor is older than the retention."""
    prefix = f"{CURATED_PREFIX}{name}/"
    cutoff = datetime.now(UTC) - retention
    by_version: dict[str, list[str]] = {}
    for key, _ in list_objects(settings, settings.s3_uri(prefix)):
        part = key[len(prefix) :].split("/", 1)[0]
        if part.startswith("v="):
            by_version.setdefault(part[2:], []).append(key)
    keep = version_in(current)
    versions = sorted(by_version)
    doomed = []
    for i, version in enumerate(versions):
        successor = versions[i + 1] if i + 1 < len(versions) else version
        written = version_time(successor)
        if version != keep and written is not None and written <= cutoff:
            doomed.append(version)
    keys = [k for v in doomed for k in by_version[v]]
    delete_keys(settings, keys)
    if doomed and glue.get_table(settings, f"{name}__versions") is not None:
        glue.delete_partitions(settings, f"{name}__versions", [[v] for v in doomed])
    return len(doomed)


def remove_old_date_versions(settings: Settings, name: str, retention: timedelta) -> int:
    """Versions of a by-date rollup that no partition points at, superseded before the retention
    (by the date's next version; a date gone, from the version's own time). A running total's
    last build may still name a superseded one (its ledger), and readers use that for a while."""
    cutoff = datetime.now(UTC) - retention
    current = {(p["Values"][0], version_of(p)) for p in glue.list_partitions(settings, name)}
    prefix = f"{CURATED_PREFIX}{name}/"
    files: dict[tuple[str, str], list[str]] = {}
    for key, _ in list_objects(settings, settings.s3_uri(prefix)):
        parts = key[len(prefix) :].split("/")
        if len(parts) < 3 or not parts[0].startswith("order_date=") or not parts[1].startswith("v="):
            continue
        files.setdefault((parts[0].removeprefix("order_date="), parts[1].removeprefix("v=")), []).append(key)
    by_date: dict[str, list[str]] = {}
    for day, version in files:
        by_date.setdefault(day, []).append(version)
    doomed: dict[tuple[str, str], list[str]] = {}
    for pair, objects in files.items():
        newer = [v for v in by_date[pair[0]] if v > pair[1]]
        superseded = version_time(min(newer) if newer else pair[1])
        if pair not in current and superseded is not None and superseded <= cutoff:
            doomed[pair] = objects
    keys = [k for ks in doomed.values() for k in ks]
    delete_keys(settings, keys)
    versions = glue.list_partitions(settings, f"{name}__versions")  # (order_date, v[, bucket])
    glue.delete_partitions(
        settings, f"{name}__versions", [p["Values"] for p in versions if tuple(p["Values"][:2]) in doomed]
    )
    return len(doomed)
