"""`orders_live`: the latest state merged at read time, as an Athena view in the Glue catalog.

The view (sql/orders_live.sql) is `orders_latest` plus the raw events of the tail, latest per order by
sequence number, deletes applied; only the orders the tail touches are ranked (a join by key).
The tail is the raw objects delivered from the watermark's
delivery time minus `LATE_MARGIN` on (dt/hour partitions from that hour, and "$path" within it):
the view's text carries the bound as literals, so Athena and the local engine prune by it (with
partition projection on raw_orders, a new dt/hour is visible with no crawl). The view is rewritten
after every compaction (`compact()`), and at `local up`; a view one compaction behind only reads a
longer tail, never a wrong answer, because merging an already compacted event again changes nothing.

Why a margin: Firehose files an event under the dt/hour of its event time, so an object delivered
late can land in an hour before the watermark's. 20 minutes covers Firehose's buffering (the
template's FirehoseBufferSeconds, 60 s by default, at most 900 s) and normal Pipe/Kinesis lag;
anything later (a stream backlog replayed after an outage) shows in orders_live once the next
compaction has merged it. The tail is thus about 20 minutes of raw data plus what arrived since the
last compaction (up to an hour more where an engine prunes by partition only): what an orders_live
query costs on Athena (docs/design.md §12, docs/deploy-aws.md "Cost notes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated.state import _RAW_KEY, CompactionState
from sales_ops.curated.tables import ORDERS_LATEST, VIEW_COLUMNS, ensure_tables, latest_view_sql, on_dates
from sales_ops.query.templates import Sql, literal, render_named
from sales_ops.settings import RAW_PREFIX, Settings

ORDERS_LIVE = "orders_live"
LATE_MARGIN = timedelta(minutes=20)
# The view's columns, in Trino types (as Athena records them for a view): orders_latest's.
LIVE_COLUMNS: list[tuple[str, str]] = VIEW_COLUMNS


# Firehose names objects <stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>, by delivery time.
_DELIVERED = re.compile(r"^(?P<stream>.+?-\d+)-(?P<at>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-[^/]+$")


@dataclass(frozen=True)
class Tail:
    """Where the raw tail starts: a dt/hour partition and, within it, the first object's key."""

    dt: str
    hour: str
    first_key: str | None  # objects of partition dt/hour delivered from the start time on


def tail_start(state: CompactionState, margin: timedelta = LATE_MARGIN) -> Tail | None:
    """The tail from (the watermark's delivery time minus margin) on; None: nothing compacted, read all.

    Every object not compacted yet was delivered after the last compaction listed the bucket, so
    after the watermark object; its event-time partition is at most `margin` earlier.
    """
    key = (state.watermark or "")[len(RAW_PREFIX) :]
    match = _RAW_KEY.match(key)
    if not match:
        return None
    delivered = _DELIVERED.match(match["name"])
    try:
        if delivered:
            at = datetime.strptime(delivered["at"], "%Y-%m-%d-%H-%M-%S") - margin
        else:
            at = datetime.strptime(f"{match['dt']} {match['hour']}", "%Y-%m-%d %H") - margin
    except ValueError:
        return None
    dt, hour = f"{at:%Y-%m-%d}", f"{at:%H}"
    first = None
    if delivered:  # later partitions sort after; within this one, the stream's objects
        # Not "<stream>-<version>-<time>": the version does not sort by time (-10- before -9-,
        # sales_ops/raw_objects.py), so the bound keeps the stream's whole first partition.
        first = f"{RAW_PREFIX}dt={dt}/hour={hour}/{delivered['stream'].rsplit('-', 1)[0]}-"
    return Tail(dt, hour, first)


def tail_filter(start: Tail | None, bucket: str) -> Sql:
    """The WHERE on raw_orders selecting the tail: partition keys (pruning on both engines; string
    compare, fixed widths), then "$path" within the first partition (files the engine may skip)."""
    if start is None:
        return Sql("TRUE")
    dt, hour = literal(start.dt), literal(start.hour)
    where = f"(dt > {dt} OR (dt = {dt} AND hour >= {hour}))"
    if start.first_key:
        where += f' AND "$path" >= {literal(f"s3://{bucket}/{start.first_key}")}'
    return Sql(where)


def live_view_sql(
    settings: Settings, state: CompactionState, only_dates: list[date] | None = None, part: Any = None
) -> str:
    """The view's SQL for `state`'s tail; with `only_dates`, the live orders of those order_dates
    only, read from orders_latest's own SQL for those dates (so the base's other dates are never
    read; the tail is read whole, it is bounded anyway); with `part` (a buckets.Slice, and dates),
    the orders of that slice only."""
    names = [name for name, _ in LIVE_COLUMNS]
    # The tail's columns beside orders_latest's (t_<name>), then the winner's of each.
    tail_columns = ", ".join(f"t.{n} AS t_{n}" for n in names)
    live_columns = ", ".join(f"CASE WHEN tail_wins THEN t_{n} ELSE {n} END AS {n}" for n in names)
    if only_dates is None:
        latest = Sql(f"{settings.database}.{ORDERS_LATEST}")
    else:
        latest = Sql(f"(\n{latest_view_sql(settings, state, only_dates, part)}\n)")
    sql = render_named(  # the view's SQL file bears its name
        "orders_live",
        settings.database,
        raw_tail=Sql(
            f"({tail_filter(tail_start(state), settings.bucket)}) AND {part.rows() if part else 'TRUE'}"
        ),
        tail_columns=Sql(tail_columns),
        live_columns=Sql(live_columns),
        latest=latest,
    )
    if only_dates is None:
        return sql
    # A tail event can carry an order into another date: keep the asked dates only.
    return f"SELECT * FROM (\n{sql}\n) AS live WHERE {on_dates(only_dates)}"


def put_live_view(
    settings: Settings, state: CompactionState | None = None, tables_ensured: bool = False
) -> str:
    """Create or rewrite orders_live (and what it reads: raw_orders, orders_latest). Returns its SQL.
    `tables_ensured`: the caller has just run `ensure_tables` (a compaction's plan does), so the
    curated tables are not read again (9 catalog reads and the state)."""
    glue.ensure_raw_table(settings, settings.s3_uri(RAW_PREFIX))
    if not tables_ensured:
        ensure_tables(settings)
    sql = live_view_sql(settings, state or CompactionState.load(settings))
    glue.put_table(settings, glue.view_input(ORDERS_LIVE, sql, LIVE_COLUMNS, settings.database))
    return sql
