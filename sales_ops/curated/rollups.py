"""Rollups of orders_latest, maintained from what changed (docs/design.md §2.7).

- **By date** (`sales_by_product_hourly`, and `customer_activity_daily`, the partials behind
  `customer_activity`): partitioned by order_date, one version per date
  (`curated/<rollup>/order_date=D/v=<version>/`, written through `<rollup>__versions`). A build
  recomputes only the dates whose orders changed since its last build: the dates whose base
  version or set of live deltas differs from what the rollup's state recorded
  (`curated/_state/rollup-<name>.json`), reading those dates of orders_latest only; then each
  date's partition is swapped (one atomic Glue write per partition).
- **Running totals** (`inventory_status`, `customer_activity`): unpartitioned, one version per
  build; each build is the previous version plus the by-date rollup's partitions rebuilt since,
  minus what those partitions held before (a ledger of date → version in the state says which).
  When an old version is gone (retention), the build adds up every date instead.

Writes go through `INSERT INTO` a table registered at a fresh location, never a CTAS with
`external_location`: the stack's workgroup enforces its configuration, and Athena then fails any
CTAS that names one ("Considerations and limitations for CTAS queries",
https://docs.aws.amazon.com/athena/latest/ug/ctas-considerations-limitations.html). A CTAS without
it would write under the workgroup's athena-results/, which its lifecycle expires.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sales_ops.catalog import glue
from sales_ops.curated.lock import S3Lock
from sales_ops.curated.state import CompactionState, dated
from sales_ops.curated.tables import current_versions, new_version, version_time
from sales_ops.load.shop import CATALOGUE_KEY
from sales_ops.query import Sql, SqlEngine, literal, render_named
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import CURATED_PREFIX, Settings, error_code

ROLLUPS = ("sales_by_product_hourly", "customer_activity", "inventory_status", "sales_totals")
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
        ("orders", "bigint", "Live orders of the customer created in the last 30 days (today included)."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("spend", "decimal(38,2)", "Amount spent (sum of order_total over sales)."),
        ("first_order_at", "timestamp", "created_at of the first order seen live (never moves back)."),
        ("last_order_at", "timestamp", "created_at of the latest order seen live (never moves back)."),
    ),
    "customer_activity_daily": (
        ("customer_id", "string", COLUMN_DESCRIPTIONS["customer_id"]),
        ("orders", "bigint", "Live orders of the customer created that day."),
        ("sales", "bigint", "Of those, sales (not cancelled or returned)."),
        ("spend", "decimal(38,2)", "Amount spent (sum of order_total over sales)."),
        ("first_order_at", "timestamp", "created_at of the day's first live order."),
        ("last_order_at", "timestamp", "created_at of the day's latest live order."),
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
# Rollups partitioned by order_date, rebuilt date by date; and the running totals over them.
BY_DATE = ("sales_by_product_hourly", "customer_activity_daily", "sales_daily")
RUNNING = {
    "inventory_status": "sales_by_product_hourly",
    "customer_activity": "customer_activity_daily",
    "sales_totals": "sales_daily",  # the dashboard's all-time figures (docs/design.md §8)
}
DATES_PER_WRITE = 100  # one partition per date: Athena's INSERT writes at most 100
# Running totals over the orders created in the last N days only (today included): a per-customer
# table over all of history grows with every new customer (a third of the mock shop's orders), and
# each build reads the previous one whole: 693 MB a build in month 12 at 10 changes/s, past the
# 1 GiB cutoff within two years (issue 20). Over a window it is bounded by the rate.
WINDOW_DAYS = {"customer_activity": 30}
# Rebuilt hourly, not after each compaction: a 30-day figure per customer gains nothing from five
# minutes' freshness, and each build reads the window's customers whole (one row per customer who
# ordered in it), which grows with the shop's customer base, not with the change set: at 10
# changes/s about 200 MB a build by month 12 (docs/design.md §2.7). The dashboard's customer
# panel reuses its read of a build until the next one (sales_ops/dashboard/metrics.py).
HOURLY_ROLLUPS = ("customer_activity",)
CYCLE_ROLLUPS = tuple(name for name in ROLLUPS if name not in HOURLY_ROLLUPS)
ROLLUP_STATE_KEY = f"{CURATED_PREFIX}_state/rollup-{{name}}.json"
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
    dates_rebuilt: list[str] = field(default_factory=list)  # by-date rollups: partitions rewritten
    full: bool = False  # running totals: added up from every date (no usable ledger)
    statements: int = 0


def build_rollups(
    settings: Settings, engine: SqlEngine, retention_hours: float = 24, names: tuple[str, ...] = ROLLUPS
) -> list[RollupReport]:
    return [build_rollup(settings, engine, name, retention_hours) for name in names]


def build_rollup(
    settings: Settings,
    engine: SqlEngine,
    name: str,
    retention_hours: float = 24,
    window_days: int | None = None,
) -> RollupReport:
    """Rebuild one rollup into a new version and point its table at it, under the rollup's S3 lease
    (CompactionLocked if another build of it is running). `window_days`: another window for a
    windowed running total (WINDOW_DAYS)."""
    if name not in ROLLUPS:
        raise ValueError(f"unknown rollup {name!r}; known: {', '.join(ROLLUPS)}")
    with S3Lock(settings, ROLLUP_LOCK_KEY.format(name=name)).held():
        if name in RUNNING:
            window = window_days if window_days is not None else WINDOW_DAYS.get(name)
            return _build_running(settings, engine, name, retention_hours, window)
        return _build_by_date(settings, engine, name, retention_hours)


@dataclass
class _Counted:
    """A rollup build's statements and bytes scanned."""

    engine: SqlEngine
    bytes_read: int = 0
    statements: int = 0

    def run(self, sql: str) -> Any:
        result = self.engine.execute(sql)
        self.bytes_read += result.bytes_scanned
        self.statements += 1
        return result


def date_signatures(settings: Settings, state: CompactionState | None = None) -> dict[str, str]:
    """order_date → what its orders_latest rows come from: the base version and the live deltas
    touching it (`state`: the compaction state, loaded if not given). A date whose signature
    changed since a build has changed rows."""
    state = state or CompactionState.load(settings)
    out = {d.isoformat(): v for d, v in current_versions(settings).items()}
    touching: dict[str, list[str]] = {}
    for delta, by_date in state.deltas.items():
        for day in dated(by_date):
            touching.setdefault(day.isoformat(), []).append(delta)
    for d, deltas in touching.items():
        out[d] = f"{out.get(d, '')}+{','.join(sorted(deltas))}"
    return out


def _build_by_date(settings: Settings, engine: SqlEngine, name: str, retention_hours: float) -> RollupReport:
    started = time.monotonic()
    counted = _Counted(engine)
    table, versions_table = _ensure_by_date(settings, name)
    state = _load_state(settings, name)
    seen: dict[str, str] = state.get("signatures", {})
    now = date_signatures(settings)
    changed = sorted(d for d in set(now) | set(seen) if now.get(d) != seen.get(d))
    gone = [d for d in changed if d not in now]
    rebuild = [date.fromisoformat(d) for d in changed if d in now]
    version = new_version()
    rows = 0
    for i in range(0, len(rebuild), DATES_PER_WRITE):
        batch = rebuild[i : i + DATES_PER_WRITE]
        body = render_named(f"rollup_by_date_{name}", settings.database, dates=batch, version=version)
        rows += _rows_written(counted.run(f"INSERT INTO {settings.database}.{versions_table}\n{body}"))
    written = {(p["Values"][0], p["Values"][1]) for p in glue.list_partitions(settings, versions_table)}
    prefix = f"{CURATED_PREFIX}{name}/"
    entries = [
        glue.partition_input(
            table, [d.isoformat()], settings.s3_uri(f"{prefix}order_date={d.isoformat()}/v={version}/")
        )
        for d in rebuild
        if (d.isoformat(), version) in written  # a date with no live order left has no rows
    ]
    glue.put_partitions(settings, table, entries)
    empty = [[d.isoformat()] for d in rebuild if (d.isoformat(), version) not in written]
    glue.delete_partitions(settings, name, [[d] for d in gone] + empty)
    state["signatures"] = now
    _save_state(settings, name, state)
    removed = _remove_old_date_versions(settings, name, timedelta(hours=retention_hours))
    return RollupReport(
        name=name,
        rows=rows,  # as the INSERTs report them (0 where the engine reports none), no extra statement
        bytes_written=sum(
            size for key, size in _objects(settings, settings.s3_uri(prefix)) if f"/v={version}/" in key
        ),
        location=settings.s3_uri(prefix),
        seconds=time.monotonic() - started,
        bytes_read=counted.bytes_read,
        versions_removed=removed,
        dates_rebuilt=[d.isoformat() for d in rebuild],
        statements=counted.statements,
    )


def _build_running(
    settings: Settings, engine: SqlEngine, name: str, retention_hours: float, window_days: int | None
) -> RollupReport:
    """Running totals over a by-date rollup: previous build + rebuilt partitions - their old state.
    With a window, the dates that left it count as changed to nothing: their partials come off."""
    source = RUNNING[name]
    inner = _build_by_date(settings, engine, source, retention_hours)  # bring the source up to date
    if name == "inventory_status":
        ensure_products_table(settings)
    started = time.monotonic()
    state = _load_state(settings, name)
    ledger: dict[str, str] = state.get("ledger", {})
    current = {p["Values"][0]: _version_of(p) for p in glue.list_partitions(settings, source)}
    if window_days is not None:
        first = (datetime.now(UTC).date() - timedelta(days=window_days - 1)).isoformat()
        current = {d: v for d, v in current.items() if d >= first}
    previous = glue.get_table(settings, name)
    changed = sorted(d for d in set(current) | set(ledger) if current.get(d) != ledger.get(d))
    kept = {(p["Values"][0], p["Values"][1]) for p in glue.list_partitions(settings, f"{source}__versions")}
    usable = (
        previous is not None and bool(ledger) and all((d, ledger[d]) in kept for d in changed if d in ledger)
    )
    if usable:
        new = {d: current[d] for d in changed if d in current}
        old = {d: ledger[d] for d in changed if d in ledger}
        with_previous = Sql("TRUE")
    else:  # first build, or an old partition already removed: add up every date
        new, old, with_previous = dict(current), {}, Sql("FALSE")
    if previous is None:  # the SQL reads the previous build: an empty table until the first one
        columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]]
        empty = settings.s3_uri(f"{CURATED_PREFIX}{name}/v={new_version()}/")
        glue.put_table(settings, glue.parquet_table_input(name, columns, empty))
    body = render_named(
        f"rollup_total_{name}",
        settings.database,
        new_partials=version_pairs(new),
        old_partials=version_pairs(old),
        with_previous=with_previous,
    )
    report = _write_version(settings, engine, name, body, retention_hours, started)
    # What this build summed, so that a reader can take it as one moment (sales_ops/dashboard/
    # snapshot.py): its version, the partials in it, and the orders_latest signatures they had.
    state["ledger"] = current
    state["version"] = version_in(report.location)
    state["signatures"] = _load_state(settings, source).get("signatures", {})
    _save_state(settings, name, state)
    report.full = not usable
    report.bytes_read += inner.bytes_read
    report.statements += inner.statements
    report.dates_rebuilt = inner.dates_rebuilt
    return report


def _write_version(
    settings: Settings, engine: SqlEngine, name: str, body: str, retention_hours: float, started: float
) -> RollupReport:
    """One unpartitioned version of a rollup, filled through a scratch table, then swapped in."""
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
    try:
        result = engine.execute(f"INSERT INTO {settings.database}.{scratch}\n{body}")
        _register_version(settings, name, location)
        glue.put_table(settings, glue.parquet_table_input(name, columns, location, descriptions=descriptions))
    finally:
        glue.delete_table(settings, scratch)
    written = sum(size for key, size in _objects(settings, location) if not key.endswith("/"))
    removed = _remove_old_versions(settings, name, location, timedelta(hours=retention_hours))
    return RollupReport(
        name=name,
        rows=_rows_written(result),
        bytes_written=written,
        location=location,
        seconds=time.monotonic() - started,
        bytes_read=result.bytes_scanned,
        versions_removed=removed,
        statements=1,
    )


@dataclass(frozen=True)
class RunningBuild:
    """One build of a running total, as its state records it: a reader takes the totals of
    `version` (`<name>__versions`, partition v) with the by-date partials of `ledger` as one moment."""

    version: str
    ledger: dict[str, str]  # order_date → the by-date rollup's version summed
    signatures: dict[str, str]  # order_date → its orders_latest signature when that was built


def running_build(settings: Settings, name: str) -> RunningBuild | None:
    """The last build of running total `name`; None before the first (or an older build's state)."""
    state = _load_state(settings, name)
    if "version" not in state:
        return None
    return RunningBuild(state["version"], state.get("ledger", {}), state.get("signatures", {}))


def _register_version(settings: Settings, name: str, location: str) -> None:
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


def _rows_written(result: Any) -> int:
    try:
        return int(result.rows[0][0])
    except (IndexError, TypeError, ValueError):
        return 0


def _ensure_by_date(settings: Settings, name: str) -> tuple[dict[str, Any], str]:
    """The rollup's table (partitioned by order_date) and its versions table (order_date, v)."""
    columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]]
    location = settings.s3_uri(f"{CURATED_PREFIX}{name}/")
    versions = f"{name}__versions"
    table = glue.get_table(settings, name)
    if table is None or not glue.partition_keys(table):  # new, or an unpartitioned one from before
        glue.delete_table(settings, name)  # a table's partition keys are not changed in place
        glue.put_table(
            settings,
            glue.parquet_table_input(
                name, columns, location, [("order_date", "date")], descriptions=rollup_descriptions(name)
            ),
        )
        _save_state(settings, name, {})
    if glue.get_table(settings, versions) is None:
        keys = [("order_date", "date"), ("v", "string")]
        glue.put_table(settings, glue.parquet_table_input(versions, columns, location, keys))
    return glue.require_table(settings, name), versions


def _version_of(partition: dict[str, Any]) -> str:
    return version_in(str(partition["StorageDescriptor"]["Location"]))


def version_in(location: str) -> str:
    """The version a rollup's location names (`…/v=<version>/`)."""
    return location.rstrip("/").rsplit("/v=", 1)[-1]


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


def _load_state(settings: Settings, name: str) -> dict[str, Any]:
    try:
        body = settings.client("s3").get_object(
            Bucket=settings.bucket, Key=ROLLUP_STATE_KEY.format(name=name)
        )
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return {}
        raise
    return dict(json.loads(body["Body"].read()))


def _save_state(settings: Settings, name: str, state: dict[str, Any]) -> None:
    settings.client("s3").put_object(
        Bucket=settings.bucket, Key=ROLLUP_STATE_KEY.format(name=name), Body=json.dumps(state).encode()
    )


def _remove_old_date_versions(settings: Settings, name: str, retention: timedelta) -> int:
    """Versions of a by-date rollup that no partition points at, superseded before the retention
    (by the date's next version; a date gone, from the version's own time). A running total's
    last build may still name a superseded one (its ledger), and readers use that for a while."""
    cutoff = datetime.now(UTC) - retention
    current = {(p["Values"][0], _version_of(p)) for p in glue.list_partitions(settings, name)}
    prefix = f"{CURATED_PREFIX}{name}/"
    files: dict[tuple[str, str], list[str]] = {}
    for key, _ in _objects(settings, settings.s3_uri(prefix)):
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
    keys = [{"Key": k} for ks in doomed.values() for k in ks]
    s3 = settings.client("s3")
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    versions = {(p["Values"][0], p["Values"][1]) for p in glue.list_partitions(settings, f"{name}__versions")}
    glue.delete_partitions(settings, f"{name}__versions", [list(p) for p in doomed if p in versions])
    return len(doomed)


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


def _remove_old_versions(settings: Settings, name: str, current: str, retention: timedelta) -> int:
    """Delete versions older than the current one whose successor is older than the retention."""
    prefix = f"{CURATED_PREFIX}{name}/"
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
    if doomed and glue.get_table(settings, f"{name}__versions") is not None:
        glue.delete_partitions(settings, f"{name}__versions", [[v] for v in doomed])
    return len(doomed)
