"""Rollups of orders_latest, maintained from what changed (docs/design.md §2.7).

- **By date** (`sales_by_product_hourly`, and `customer_activity_daily`, the partials behind
  `customer_activity`): partitioned by order_date, one version per date
  (`curated/<rollup>/order_date=D/v=<version>/`, written through `<rollup>__versions`). A build
  recomputes only the dates whose orders changed since its last build: the dates whose base
  version or set of live deltas differs from what the rollup's state recorded
  (`curated/_state/rollup-<name>.json`), reading those dates of orders_latest only; then each
  date's partition is swapped (one atomic Glue write per partition).
- **Running totals** (`inventory_status`, `sales_totals`): unpartitioned, one version per
  build; each build is the previous version plus the by-date rollup's partitions rebuilt since,
  minus what those partitions held before (a ledger of date → version in the state says which).
  When an old version is gone (retention), the build adds up every date instead.
- **`customer_activity`**: the sum of its window's partials, in passes by customer bucket
  (sales_ops/curated/customers.py).

Writes go through `INSERT INTO` a table registered at a fresh location, never a CTAS with
`external_location`: the stack's workgroup enforces its configuration, and Athena then fails any
CTAS that names one ("Considerations and limitations for CTAS queries",
https://docs.aws.amazon.com/athena/latest/ug/ctas-considerations-limitations.html). A CTAS without
it would write under the workgroup's athena-results/, which its lifecycle expires.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated import customers
from sales_ops.curated.buckets import Slice, pinned
from sales_ops.curated.lock import S3Lock
from sales_ops.curated.planning import pass_budget
from sales_ops.curated.rollup_store import (
    ROLLUP_COLUMNS,
    Counted,
    RollupReport,
    drop_slices_table,
    fresh_slices_table,
    list_objects,
    load_state,
    remove_old_date_versions,
    rollup_descriptions,
    rows_written,
    save_state,
    version_in,
    version_of,
    version_pairs,
    write_chunks,
    write_version,
)
from sales_ops.curated.state import CompactionState, dated
from sales_ops.curated.tables import current_versions, latest_view_sql, new_version
from sales_ops.load.shop import CATALOGUE_KEY
from sales_ops.query import Sql, SqlEngine, render_named
from sales_ops.settings import CURATED_PREFIX, Settings

ROLLUPS = ("sales_by_product_hourly", "customer_activity", "inventory_status", "sales_totals")
PRODUCTS_TABLE = "products"
PRODUCT_COLUMNS = [
    ("product_id", "string"),
    ("product_name", "string"),
    ("category", "string"),
    ("unit_price", "double"),
    ("opening_stock", "int"),
]

# The running totals and the by-date rollup each adds up (customer_activity is not one: it sums
# its window's partials each build, customers.py).
RUNNING = {
    "inventory_status": "sales_by_product_hourly",
    "sales_totals": "sales_daily",  # the dashboard's all-time figures (docs/design.md §8)
}
# Partitioned by a bucket of customer_id too, so that customer_activity is built in passes
# (sales_ops/curated/customers.py).
BUCKETED = (customers.PARTIALS,)
# customer_activity covers the orders created in the last N days only (today included): a
# per-customer table over all of history grows with every new customer (a third of the mock shop's
# orders), past the 1 GiB cutoff within two years at 10 changes/s (issue 20). Over a window it is
# bounded by the rate.
WINDOW_DAYS = {"customer_activity": 30}
# Rebuilt hourly, not after each compaction: a 30-day figure per customer gains nothing from five
# minutes' freshness, and each build reads the window's partials whole, which grow with the
# shop's customer base, not with the change set (docs/design.md §2.7). The dashboard's customer
# panel reuses its read of a build until the next one (sales_ops/dashboard/metrics.py).
HOURLY_ROLLUPS = ("customer_activity",)
CYCLE_ROLLUPS = tuple(name for name in ROLLUPS if name not in HOURLY_ROLLUPS)
# A rollup build is a writer like compaction: one at a time per rollup, or two builds would drop
# each other's scratch table. Same lease as compaction, another key.
ROLLUP_LOCK_KEY = f"{CURATED_PREFIX}_state/rollup-{{name}}.lock"


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
    (CompactionLocked if another build of it is running). `window_days`: another window for
    customer_activity (WINDOW_DAYS)."""
    if name not in ROLLUPS:
        raise ValueError(f"unknown rollup {name!r}; known: {', '.join(ROLLUPS)}")
    with S3Lock(settings, ROLLUP_LOCK_KEY.format(name=name)).held():
        if name == customers.CUSTOMERS:
            window = window_days if window_days is not None else WINDOW_DAYS[name]
            return _build_customers(settings, engine, retention_hours, window)
        if name in RUNNING:
            return _build_running(settings, engine, name, retention_hours)
        return _build_by_date(settings, engine, name, retention_hours)


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


def window_start(window_days: int) -> str:
    """The first order_date of a window of `window_days` days, today included."""
    return (datetime.now(UTC).date() - timedelta(days=window_days - 1)).isoformat()


def _build_by_date(
    settings: Settings, engine: SqlEngine, name: str, retention_hours: float, window_days: int | None = None
) -> RollupReport:
    """Rebuild the dates whose orders changed (only those of the window, if given: the others are
    then dropped) into a new version, and point each date's partitions at it."""
    started = time.monotonic()
    counted = Counted(engine)
    table, versions_table = _ensure_by_date(settings, name)
    state = load_state(settings, name)
    seen: dict[str, str] = state.get("signatures", {})
    compaction = CompactionState.load(settings)
    now = date_signatures(settings, compaction)
    if window_days is not None:
        first = window_start(window_days)
        now = {d: signature for d, signature in now.items() if d >= first}
    rows = _rows_by_date(compaction, now)
    buckets = 0  # not bucketed
    if name in BUCKETED:
        buckets = customers.bucket_count(settings, sum(rows.values()), state.get("buckets", 1))
        if buckets != state.get("buckets", 1):
            seen = {}  # a new bucket count: every date of the window again
        state["buckets"] = buckets
    changed = sorted(d for d in set(now) | set(seen) if now.get(d) != seen.get(d))
    rebuild = [date.fromisoformat(d) for d in changed if d in now]
    version = new_version()
    inserted = 0
    for dates, low, high in write_chunks(rebuild, max(buckets, 1), rows, pass_budget(settings)):
        inserted += write_dates(settings, counted, name, dates, version, (buckets, low, high))
    _swap_dates(settings, table, versions_table, version, set(changed))
    state["signatures"] = now
    save_state(settings, name, state)
    removed = remove_old_date_versions(settings, name, timedelta(hours=retention_hours))
    prefix = f"{CURATED_PREFIX}{name}/"
    return RollupReport(
        name=name,
        rows=inserted,  # as the INSERTs report them (0 where the engine reports none), no extra statement
        bytes_written=sum(
            size for key, size in list_objects(settings, settings.s3_uri(prefix)) if f"/v={version}/" in key
        )
        if rebuild
        else 0,  # a fresh version nothing was written to
        location=settings.s3_uri(prefix),
        seconds=time.monotonic() - started,
        bytes_read=counted.bytes_read,
        versions_removed=removed,
        dates_rebuilt=[d.isoformat() for d in rebuild],
        statements=counted.statements,
    )


Buckets = tuple[int, int, int]  # customer_activity's partials: the bucket count, first and last written


def write_dates(
    settings: Settings, counted: Counted, name: str, dates: list[date], version: str, buckets: Buckets
) -> int:
    """`dates` of by-date rollup `name` (customer_activity's partials: their `buckets`) written
    into `version` (rows inserted): one INSERT from orders_latest, or, where those dates are more
    than one statement may read (buckets.reading_slices, as the checks decide), one INSERT per
    slice of the orders into `<name>__slices`, then one adding the slices up: one row per key
    either way (every figure is a count, a sum, a min or a max), each statement under the cutoff
    at any rate."""
    db = settings.database
    attempts = itertools.count()  # a slice read again (buckets.pinned) writes under a new v

    def sum_slice(part: Slice | None, state: CompactionState) -> str | None:
        if part is None:
            return None
        attempt = next(attempts)
        if attempt == 0:
            fresh_slices_table(settings, name, bucketed=name in BUCKETED)
        tag = f"{version}-{attempt}"
        latest = Sql(f"({latest_view_sql(settings, state, dates, part)})")
        counted.run(
            f"INSERT INTO {db}.{name}__slices\n{_select(settings, name, dates, tag, latest, buckets)}"
        )
        return tag

    tags = [tag for tag in pinned(settings, sum_slice, dates) if tag is not None]
    if not tags:  # one statement
        body = _select(settings, name, dates, version, Sql(f"{db}.orders_latest"), buckets)
        return rows_written(counted.run(f"INSERT INTO {db}.{name}__versions\n{body}"))
    try:
        inserted = 0
        for body in _merges(settings, name, tags, version, buckets):
            inserted += rows_written(counted.run(f"INSERT INTO {db}.{name}__versions\n{body}"))
        return inserted
    finally:
        drop_slices_table(settings, name)


def _merges(settings: Settings, name: str, tags: list[str], version: str, buckets: Buckets) -> list[str]:
    """The SELECTs adding up the slices' sums (`tags`) of `name` into `version`: one (a sales
    rollup's rows per key are few), or for customer_activity's partials (about a row per order) one
    per range of buckets whose slices' partials fit a statement (customers.merge_passes)."""
    if name not in BUCKETED:
        return [render_named(f"rollup_merge_{name}", settings.database, slices=tags, version=version)]
    return [
        render_named(
            "customer_activity_partials_merge",
            settings.database,
            slices=tags,
            version=version,
            bucket_low=low,
            bucket_high=high,
        )
        for low, high in customers.merge_passes(settings, tags, buckets[1], buckets[2])
    ]


def _select(
    settings: Settings, name: str, dates: list[date], version: str, latest: Sql, buckets: Buckets
) -> str:
    """The SELECT writing `dates` of by-date rollup `name` into `version` from `latest` (all of
    orders_latest or a slice of it)."""
    if name not in BUCKETED:
        return render_named(
            f"rollup_by_date_{name}", settings.database, latest=latest, dates=dates, version=version
        )
    count, low, high = buckets
    return render_named(
        "customer_activity_partials",
        settings.database,
        latest=latest,
        dates=dates,
        version=version,
        buckets=count,
        bucket_low=low,
        bucket_high=high,
    )


def _rows_by_date(compaction: CompactionState, dates: dict[str, str]) -> dict[date, int]:
    """orders_latest rows of each date (base and live deltas, as compaction counted them): what a
    by-date build of that date reads, at most."""
    rows = {date.fromisoformat(d): compaction.base_rows.get(d, 0) for d in dates}
    for by_date in compaction.deltas.values():
        for day in dated(by_date) & rows.keys():
            rows[day] += by_date[day.isoformat()]
    return rows


def _swap_dates(
    settings: Settings, table: dict[str, Any], versions_table: str, version: str, changed: set[str]
) -> None:
    """Point the rollup's partitions of the changed dates at what `version` wrote (one atomic Glue
    write per partition), and drop the ones it has no rows for (a date, or a bucket, emptied)."""
    if not changed:  # nothing written, nothing to drop: no catalog reads
        return
    prefix = f"{CURATED_PREFIX}{table['Name']}/"
    entries = []
    written = glue.list_partitions(settings, versions_table, expression=f"v = '{version}'")
    for values in (p["Values"] for p in written if p["Values"][1] == version):  # (order_date, v[, bucket])
        buckets = "".join(f"bucket={b}/" for b in values[2:])
        location = settings.s3_uri(f"{prefix}order_date={values[0]}/v={version}/{buckets}")
        entries.append(glue.partition_input(table, [values[0], *values[2:]], location))
    glue.put_partitions(settings, table, entries)
    fresh = {tuple(e["Values"]) for e in entries}
    stale = [
        p["Values"]
        for p in glue.list_partitions(settings, table["Name"])
        if p["Values"][0] in changed and tuple(p["Values"]) not in fresh
    ]
    glue.delete_partitions(settings, table["Name"], stale)


def _build_customers(
    settings: Settings, engine: SqlEngine, retention_hours: float, window_days: int
) -> RollupReport:
    """customer_activity: the window's daily partials summed per customer, in passes by bucket
    (sales_ops/curated/customers.py)."""
    name, source = customers.CUSTOMERS, customers.PARTIALS
    inner = _build_by_date(settings, engine, source, retention_hours, window_days)
    started = time.monotonic()
    source_state = load_state(settings, source)
    ledger = {p["Values"][0]: version_of(p) for p in glue.list_partitions(settings, source)}
    counted = Counted(engine)
    report = customers.build_window(
        settings, counted, ledger, source_state["buckets"], retention_hours, started
    )
    # What this build summed (as for a running total): its version, the partials, their signatures.
    state = {
        "ledger": ledger,
        "version": version_in(report.location),
        "signatures": source_state["signatures"],
    }
    save_state(settings, name, state)
    report.full = True  # every date of the window is added up, each build
    report.bytes_read += inner.bytes_read
    report.statements += inner.statements
    report.dates_rebuilt = inner.dates_rebuilt
    return report


def _build_running(settings: Settings, engine: SqlEngine, name: str, retention_hours: float) -> RollupReport:
    """Running totals over a by-date rollup: previous build + rebuilt partitions - their old state."""
    source = RUNNING[name]
    inner = _build_by_date(settings, engine, source, retention_hours)  # bring the source up to date
    if name == "inventory_status":
        ensure_products_table(settings)
    started = time.monotonic()
    state = load_state(settings, name)
    ledger: dict[str, str] = state.get("ledger", {})
    current = {p["Values"][0]: version_of(p) for p in glue.list_partitions(settings, source)}
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
    report = write_version(settings, Counted(engine), name, [body], retention_hours, started)
    # What this build summed, so that a reader can take it as one moment (sales_ops/dashboard/
    # snapshot.py): its version, the partials in it, and the orders_latest signatures they had.
    state["ledger"] = current
    state["version"] = version_in(report.location)
    state["signatures"] = load_state(settings, source).get("signatures", {})
    save_state(settings, name, state)
    report.full = not usable
    report.bytes_read += inner.bytes_read
    report.statements += inner.statements
    report.dates_rebuilt = inner.dates_rebuilt
    return report


@dataclass(frozen=True)
class RunningBuild:
    """One build of a running total, as its state records it: a reader takes the totals of
    `version` (`<name>__versions`, partition v) with the by-date partials of `ledger` as one moment."""

    version: str
    ledger: dict[str, str]  # order_date → the by-date rollup's version summed
    signatures: dict[str, str]  # order_date → its orders_latest signature when that was built


def running_build(settings: Settings, name: str) -> RunningBuild | None:
    """The last build of running total `name`; None before the first (or an older build's state)."""
    state = load_state(settings, name)
    if "version" not in state:
        return None
    return RunningBuild(state["version"], state.get("ledger", {}), state.get("signatures", {}))


def _ensure_by_date(settings: Settings, name: str) -> tuple[dict[str, Any], str]:
    """The rollup's table (partitioned by order_date, and bucket if BUCKETED) and its versions
    table (order_date, v[, bucket]). A table of another layout (from before) is made anew."""
    columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]]
    location = settings.s3_uri(f"{CURATED_PREFIX}{name}/")
    versions = f"{name}__versions"
    bucket = [("bucket", "int")] if name in BUCKETED else []
    keys, version_keys = [("order_date", "date"), *bucket], [("order_date", "date"), ("v", "string"), *bucket]
    table = glue.get_table(settings, name)
    if table is None or glue.partition_keys(table) != keys:
        for stale in (name, versions):  # a table's partition keys are not changed in place
            glue.delete_table(settings, stale)
        glue.put_table(
            settings,
            glue.parquet_table_input(name, columns, location, keys, descriptions=rollup_descriptions(name)),
        )
        save_state(settings, name, {})
    if glue.get_table(settings, versions) is None:
        glue.put_table(settings, glue.parquet_table_input(versions, columns, location, version_keys))
    return glue.require_table(settings, name), versions


def ensure_products_table(settings: Settings) -> None:
    """The product catalogue the load publishes (reference/products/), as a JSON table."""
    location = settings.s3_uri(CATALOGUE_KEY.rsplit("/", 1)[0] + "/")
    if glue.get_table(settings, PRODUCTS_TABLE) is None:
        glue.put_table(settings, glue.json_table_input(PRODUCTS_TABLE, PRODUCT_COLUMNS, location))
