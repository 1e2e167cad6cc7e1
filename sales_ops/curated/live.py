"""`orders_live`: the latest state merged at read time, as an Athena view in the Glue catalog.

The view (sql/orders_live.sql) is `orders_latest` plus the raw events of the tail, latest per order by
sequence number, deletes applied. The tail is the raw dt/hour partitions from the compaction
watermark's hour minus `LATE_MARGIN` on: the view's text carries that bound as literals, so Athena
and the local engine prune raw partitions by it (with partition projection on raw_orders, a new
dt/hour is visible with no crawl). The view is rewritten after every compaction (`compact()`), and
at `local up`; a view one compaction behind only reads a longer tail, never a wrong answer, because
merging an already compacted event again changes nothing.

Why a margin: Firehose files an event under the dt/hour of its event time, so an object delivered
late can land in an hour before the watermark's. 20 minutes covers Firehose's buffering (the
template's FirehoseBufferSeconds, 60 s by default, at most 900 s) and normal Pipe/Kinesis lag;
anything later (a stream backlog replayed after an outage) shows in orders_live once the next
compaction has merged it. Partitions are hourly, so the tail is 20 to 80 minutes of raw data plus
what arrived since the last compaction: what an orders_live query costs on Athena (docs/design.md
§12, docs/deploy-aws.md "Cost notes").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sales_ops.catalog import glue
from sales_ops.curated.compaction import ensure_tables
from sales_ops.curated.state import _RAW_KEY, CompactionState
from sales_ops.query.templates import Sql, literal, render_named
from sales_ops.schema import LATEST_COLUMNS
from sales_ops.settings import RAW_PREFIX, Settings

ORDERS_LIVE = "orders_live"
LATE_MARGIN = timedelta(minutes=20)
# The view's columns, in Trino types (as Athena records them for a view).
LIVE_COLUMNS: list[tuple[str, str]] = [
    (c.name, "varchar" if c.latest_type == "string" else c.latest_type) for c in LATEST_COLUMNS
] + [("order_date", "date")]


def tail_start(state: CompactionState, margin: timedelta = LATE_MARGIN) -> tuple[str, str] | None:
    """(dt, hour) from which raw partitions are read, or None (nothing compacted: read them all)."""
    match = _RAW_KEY.match((state.watermark or "")[len(RAW_PREFIX) :])
    if not match:
        return None
    try:
        at = datetime.strptime(f"{match['dt']} {match['hour']}", "%Y-%m-%d %H") - margin
    except ValueError:
        return None
    return f"{at:%Y-%m-%d}", f"{at:%H}"


def tail_filter(start: tuple[str, str] | None) -> Sql:
    """The WHERE on raw_orders' partition keys selecting the tail (string compare: fixed widths)."""
    if start is None:
        return Sql("TRUE")
    dt, hour = (literal(v) for v in start)
    return Sql(f"(dt > {dt} OR (dt = {dt} AND hour >= {hour}))")


def live_view_sql(settings: Settings, state: CompactionState) -> str:
    return render_named(ORDERS_LIVE, settings.database, raw_tail=tail_filter(tail_start(state)))


def put_live_view(settings: Settings, state: CompactionState | None = None) -> str:
    """Create or rewrite orders_live (and what it reads: raw_orders, orders_latest). Returns its SQL."""
    glue.ensure_raw_table(settings, settings.s3_uri(RAW_PREFIX))
    ensure_tables(settings)
    sql = live_view_sql(settings, state or CompactionState.load(settings))
    glue.put_table(settings, glue.view_input(ORDERS_LIVE, sql, LIVE_COLUMNS, settings.database))
    return sql
