"""orders_latest in the catalog and in S3 (docs/design.md §2.5): its Glue tables and view, where
their files live, how versions are named, and the SQL fragments that pick versions.

`orders_latest` is a view over the **base** (`orders_base`, `orders_tombstones`: one partition per
order_date pointing at a version `curated/orders_latest/order_date=D/v=<version>/`, tombstones at
`v=<version>-deleted/`) and the **deltas** (`orders_delta`, one partition per pass of a cycle).
`orders_latest_versions` (partitions order_date, v) is the table the SQL writes versions into. The
compaction writes them (compaction.py), `orders_live` builds on the view (live.py), the rollups and
checks read the current versions.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated import baseline
from sales_ops.curated.lock import CompactionError
from sales_ops.curated.state import CompactionState
from sales_ops.query.catalog_tables import as_dir, split_s3
from sales_ops.query.templates import Sql, literal, render_named
from sales_ops.schema import LATEST_COLUMNS
from sales_ops.settings import CURATED_PREFIX, Settings

ORDERS_LATEST = "orders_latest"  # the view readers query
BASE_TABLE = "orders_base"
TOMBSTONES_TABLE = "orders_tombstones"
VERSIONS_TABLE = "orders_latest_versions"
DELTA_TABLE = "orders_delta"
REJECTED_TABLE = "orders_rejected"
LATEST_PREFIX = f"{CURATED_PREFIX}orders_latest/"
DELTA_PREFIX = f"{CURATED_PREFIX}orders_delta/"
REJECTED_PREFIX = f"{CURATED_PREFIX}orders_rejected/"
DELETED = "-deleted"
COLUMNS: list[tuple[str, str]] = [(c.name, c.latest_type) for c in LATEST_COLUMNS]
# new_order: the order's first change in the pass is its creation (an INSERT), so no older row of
# it can exist: a fold looks for the other orders' rows only (compact_orphans.sql).
DELTA_COLUMNS: list[tuple[str, str]] = [
    *COLUMNS,
    ("is_deleted", "boolean"),
    ("order_date", "date"),
    ("new_order", "boolean"),
]
REJECTED_COLUMNS: list[tuple[str, str]] = [
    ("order_id", "string"),
    ("event_id", "string"),
    ("sequence_number", "string"),
    ("event_time", "string"),
    ("reason", "string"),
    ("source", "string"),
]
# The view's columns, in Trino types (as Athena records them for a view).
VIEW_COLUMNS: list[tuple[str, str]] = [
    (c.name, "varchar" if c.latest_type == "string" else c.latest_type) for c in LATEST_COLUMNS
] + [("order_date", "date")]

VERSION_DIR = re.compile(
    r"order_date=(?P<date>[^/]+)/v=(?P<version>[^/]+)/(?:bucket=(?P<bucket>[0-9A-F]{4}-[0-9A-F]{4})/)?"
)
WHOLE = "0000-FFFF"  # the bucket of the whole hash space (sales_ops/curated/buckets.py)
BUCKETED = "sales_ops_bucketed"  # orders_base parameter: every current version is in buckets


def new_version() -> str:
    """Sortable by creation time: 20261123T184556123456Z-1a2b3c."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def version_time(version: str) -> datetime | None:
    """When a version (or a delta) was named: its creation time (None: not a version name)."""
    try:
        return datetime.strptime(version[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def ensure_tables(settings: Settings) -> None:
    """The curated tables and the orders_latest view exist in Glue; raw_orders must (the crawler's,
    or the backfill's for a table whose rows never streamed). A lake from before the deltas (its
    orders_latest a partitioned table) is moved over: its partitions become the base's."""
    if glue.get_table(settings, glue.RAW_TABLE) is None:
        raise CompactionError(
            f"{settings.database}.{glue.RAW_TABLE} is not in the catalog yet: run `sales-ops crawl` first"
        )
    if glue.get_table(settings, baseline.BASELINE_TABLE) is None:
        baseline.ensure_tables(settings)
    location = settings.s3_uri(LATEST_PREFIX)
    by_date = [("order_date", "date")]
    tables = [
        (BASE_TABLE, COLUMNS, location, by_date),
        (TOMBSTONES_TABLE, COLUMNS, location, by_date),
        (VERSIONS_TABLE, COLUMNS, location, [*by_date, ("v", "string"), ("bucket", "string")]),
        (DELTA_TABLE, DELTA_COLUMNS, settings.s3_uri(DELTA_PREFIX), [("delta", "string")]),
        (REJECTED_TABLE, REJECTED_COLUMNS, settings.s3_uri(REJECTED_PREFIX), [("delta", "string")]),
    ]
    bucketed = True
    for name, columns, where, keys in tables:
        table = glue.get_table(settings, name)
        if table is not None and [k for k, _ in glue.partition_keys(table)] != [k for k, _ in keys]:
            # orders_latest_versions from before buckets: its versions are re-registered (in buckets)
            # by _into_buckets; the old entries name no bucket, so the table is made anew.
            glue.delete_table(settings, name)
            table = None
        if table is None:
            created = glue.parquet_table_input(name, columns, where, keys)
            if name == BASE_TABLE:
                created["Parameters"][BUCKETED] = "true"  # a new base has no version to move
            glue.put_table(settings, created)
        elif len(table["StorageDescriptor"]["Columns"]) < len(columns):  # a lake from before a column
            grown = glue.parquet_table_input(name, columns, where, keys)
            grown["Parameters"] |= {glue.COLUMNS_ADDED: "true"}
            grown["Parameters"] |= {k: v for k, v in table.get("Parameters", {}).items() if k == BUCKETED}
            glue.put_table(settings, grown)
        if name == BASE_TABLE and table is not None:
            bucketed = table.get("Parameters", {}).get(BUCKETED) == "true"
    latest = glue.get_table(settings, ORDERS_LATEST)
    if latest is not None and glue.view_sql(latest) is None:
        _move_to_base(settings)
        latest = None
        bucketed = False
    if not bucketed:
        _into_buckets(settings)
    put_latest_view(settings, CompactionState.load(settings), latest)


def _into_buckets(settings: Settings) -> None:
    """A lake from before buckets: each date's current version (live rows and tombstones) is copied
    into one bucket of a new version (`…/v=<new>/bucket=0000-FFFF/`, S3 CopyObject: no query reads
    it), registered in orders_latest_versions and swapped in; the old version goes with retention.
    A date already in buckets is left alone, so a run that crashed midway is finished by the next;
    the base is marked once every date is moved."""
    s3 = settings.client("s3")
    layout = version_layout(settings)
    versions = glue.require_table(settings, VERSIONS_TABLE)
    tombstones = {p["Values"][0]: p for p in glue.list_partitions(settings, TOMBSTONES_TABLE)}
    for partition in glue.list_partitions(settings, BASE_TABLE):
        day = partition["Values"][0]
        match = VERSION_DIR.search(partition["StorageDescriptor"]["Location"])
        if match is None or None not in layout.get((day, match["version"]), {None: 0}):
            continue  # not a version folder, or in buckets already
        version = new_version()
        sources = {"": partition, DELETED: tombstones.get(day)}
        for suffix, source in sources.items():
            if source is None:
                continue
            _, prefix = split_s3(as_dir(source["StorageDescriptor"]["Location"]))
            target = f"{LATEST_PREFIX}order_date={day}/v={version}{suffix}/bucket={WHOLE}/"
            for key, _ in list_sizes(settings, prefix):
                if key[len(prefix) :].count("/") == 0:  # the version's own files, not a deeper folder
                    source_ref = {"Bucket": settings.bucket, "Key": key}
                    s3.copy_object(
                        Bucket=settings.bucket, Key=target + key.rsplit("/", 1)[1], CopySource=source_ref
                    )
        folder = settings.s3_uri(f"{LATEST_PREFIX}order_date={day}/v={version}")
        glue.put_partitions(
            settings,
            versions,
            [
                glue.partition_input(
                    versions, [day, version + suffix, WHOLE], f"{folder}{suffix}/bucket={WHOLE}/"
                )
                for suffix in ("", DELETED)
            ],
        )
        for name, suffix in ((BASE_TABLE, ""), (TOMBSTONES_TABLE, DELETED)):
            table = glue.require_table(settings, name)
            entry = glue.partition_input(table, [day], f"{folder}{suffix}/", {"compaction_version": version})
            glue.put_partitions(settings, table, [entry])
    base = glue.require_table(settings, BASE_TABLE)
    marked = glue.table_update_input(base)
    marked["Parameters"] = {**marked.get("Parameters", {}), BUCKETED: "true"}
    glue.put_table(settings, marked)


def put_latest_view(
    settings: Settings, state: CompactionState, current: dict[str, Any] | None = None
) -> None:
    """Write the orders_latest view for the live deltas of `state` (their dates are literals in its
    text), unless the catalog holds that text already."""
    sql = latest_view_sql(settings, state)
    current = current if current is not None else glue.get_table(settings, ORDERS_LATEST)
    if current is None or glue.view_sql(current) != sql:
        glue.put_table(settings, glue.view_input(ORDERS_LATEST, sql, VIEW_COLUMNS, settings.database))


def latest_view_sql(
    settings: Settings, state: CompactionState, only_dates: list[date] | None = None, part: Any = None
) -> str:
    """orders_latest's SQL for the live deltas of `state`. With `only_dates`, the rows of those
    order_dates only, filtered where the base is read, so both engines prune its partitions (a
    filter on the view itself cannot reach below its ranking). With `part` (a buckets.Slice), the
    orders of one slice only, the base read from the buckets of its pinned versions."""
    dates = state.delta_dates()
    only = Sql("TRUE") if only_dates is None else on_dates(only_dates)
    db = settings.database
    if part is None:
        base, tombstones, in_slice = Sql(f"{db}.{BASE_TABLE}"), Sql(f"{db}.{TOMBSTONES_TABLE}"), Sql("TRUE")
    else:
        base, tombstones, in_slice = part.base(db, deleted=False), part.base(db, deleted=True), part.rows()
    return render_named(
        "orders_latest",
        db,
        delta_dates=dates,
        only_dates=only,
        base=base,
        tombstones=tombstones,
        in_slice=in_slice,
    )


def on_dates(dates: list[date]) -> Sql:
    """WHERE fragment: rows of these order_dates (none if the list is empty)."""
    return Sql(f"order_date IN ({literal(sorted(dates), top=True)})")


def _move_to_base(settings: Settings) -> None:
    """orders_latest was the base table itself: its partitions (and their tombstones) become the
    base's, then the name is the view's."""
    partitions = glue.list_partitions(settings, ORDERS_LATEST)
    for name, suffix in ((BASE_TABLE, ""), (TOMBSTONES_TABLE, DELETED)):
        table = glue.require_table(settings, name)
        entries = [
            glue.partition_input(
                table, p["Values"], p["StorageDescriptor"]["Location"].rstrip("/") + suffix + "/"
            )
            for p in partitions
        ]
        glue.put_partitions(settings, table, entries)
    glue.delete_table(settings, ORDERS_LATEST)


def current_versions(settings: Settings) -> dict[date, str]:
    """Each order_date partition of the base → the version it points at ({} before any)."""
    if glue.get_table(settings, BASE_TABLE) is None:
        return {}
    out = {}
    for partition in glue.list_partitions(settings, BASE_TABLE):
        match = VERSION_DIR.search(partition["StorageDescriptor"]["Location"])
        if match:
            out[date.fromisoformat(partition["Values"][0])] = match["version"]
    return out


def live_deltas(settings: Settings) -> list[str]:
    """The registered partitions of orders_delta: what orders_latest merges with the base."""
    if glue.get_table(settings, DELTA_TABLE) is None:
        return []
    return sorted(p["Values"][0] for p in glue.list_partitions(settings, DELTA_TABLE))


def with_tombstones(versions: list[str]) -> list[str]:
    """The versions and their tombstones' (`<version>-deleted`), sorted."""
    return sorted({v + suffix for v in versions for suffix in ("", DELETED)})


def version_layout(
    settings: Settings, prefix: str = LATEST_PREFIX
) -> dict[tuple[str, str], dict[str | None, int]]:
    """(order_date, version) → its buckets → bytes of their live rows and tombstones under
    orders_latest, or under `prefix` of it (None: files of a version from before buckets,
    directly in its folder)."""
    out: dict[tuple[str, str], dict[str | None, int]] = {}
    for key, size in list_sizes(settings, prefix):
        match = VERSION_DIR.search(key)
        if match:
            buckets = out.setdefault((match["date"], match["version"].removesuffix(DELETED)), {})
            buckets[match["bucket"]] = buckets.get(match["bucket"], 0) + size
    return out


def list_sizes(settings: Settings, prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under `prefix` of the bucket."""
    out = []
    for page in (
        settings.client("s3").get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
    ):
        out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return out


def delete_keys(settings: Settings, keys: list[str]) -> None:
    """Delete these objects of the bucket, 1,000 a request."""
    s3 = settings.client("s3")
    for i in range(0, len(keys), 1000):
        objects = [{"Key": key} for key in keys[i : i + 1000]]
        s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": objects, "Quiet": True})
