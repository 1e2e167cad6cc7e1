"""One refresh's figures about orders now, without reading all of history (issue 20).

dashboard_live.sql groups orders_live; over all of it, every refresh would read every order ever
placed. Once the `sales_totals` rollup has a build, a refresh reads instead (docs/design.md §8):

- that build's running totals (`sales_totals__versions`, the version its state names),
- minus that build's daily partials of the *open* dates (`sales_daily`, the versions its ledger
  names),
- plus orders_live of the open dates only.

A date is open when its orders may differ from what that build summed: its orders_latest
signature changed since (a delta or a fold touched it, or it is new), the raw tail holds a change
of it, or it is today or yesterday (the headline's today and the last hour lie there). Every other
date is what the build summed. Each date is counted once, from one source, so the refresh is still
one moment (issue 22). Cost: the tail (twice: its dates, then the statement) and the open dates,
about the window an order's lifecycle spans (§2.5), whatever the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sales_ops.curated.live import live_view_sql, tail_filter, tail_start
from sales_ops.curated.rollups import RunningBuild, date_signatures, running_build, version_pairs
from sales_ops.curated.state import CompactionState
from sales_ops.query import SqlEngine, literal, render_named
from sales_ops.query.templates import Sql
from sales_ops.settings import Settings

TOTALS = "sales_totals"
# dashboard_live.sql's `settled` rows when it reads all of orders_live: none (read_now's shape).
NOTHING_SETTLED = Sql(
    "SELECT kind, value, live_orders, orders, units, total_sales, newest_event_time FROM read_now WHERE FALSE"
)


@dataclass(frozen=True)
class LiveQuery:
    """dashboard_live's statement for this refresh, and the dates it reads live."""

    sql: str
    open_dates: list[date] | None  # None: all of orders_live (no sales_totals build yet)


def live_query(settings: Settings, engine: SqlEngine) -> LiveQuery:
    """The statement behind the live panels: bounded once sales_totals has a build. Runs one
    statement itself (the tail's dates)."""
    db = settings.database
    build = running_build(settings, TOTALS)
    if build is None:
        return LiveQuery(all_of_orders_live(settings), None)
    state = CompactionState.load(settings)
    dates = open_dates(settings, engine, state, build)
    opened = {d.isoformat() for d in dates}
    settled = render_named(
        "dashboard_settled",
        db,
        totals=Sql(f"v = {literal(build.version)}"),
        open_partials=version_pairs({d: v for d, v in build.ledger.items() if d in opened}),
    )
    live = Sql(f"(\n{live_view_sql(settings, state, dates)}\n)")
    return LiveQuery(render_named("dashboard_live", db, live=live, settled=Sql(settled)), dates)


def all_of_orders_live(settings: Settings) -> str:
    """dashboard_live over all of orders_live: before the first sales_totals build (and the
    reference the bounded statement is tested against)."""
    db = settings.database
    return render_named("dashboard_live", db, live=Sql(f"{db}.orders_live"), settled=NOTHING_SETTLED)


def open_dates(
    settings: Settings, engine: SqlEngine, state: CompactionState, build: RunningBuild
) -> list[date]:
    """The dates whose orders may differ from what `build` summed (see the module's docstring)."""
    now = date_signatures(settings, state)  # the same moment of the state as the SQL below
    changed = {d for d in set(now) | set(build.signatures) if now.get(d) != build.signatures.get(d)}
    raw_tail = tail_filter(tail_start(state), settings.bucket)
    tail = engine.execute(render_named("dashboard_tail_dates", settings.database, raw_tail=raw_tail))
    touched = {_day(day) for day, _ in tail.rows if day is not None}
    dateless = sorted({str(order_id) for day, order_id in tail.rows if day is None and order_id})
    touched |= _dateless_dates(settings, engine, state, dateless)
    today = datetime.now(UTC).date()  # the engines' sessions are UTC (current_date)
    return sorted({date.fromisoformat(d) for d in changed} | touched | {today - timedelta(days=1), today})


def _dateless_dates(
    settings: Settings, engine: SqlEngine, state: CompactionState, tail_ids: list[str]
) -> set[date]:
    """Where the base holds the orders of deletes that carry no date (Keys-only REMOVEs), in the
    tail or in a live delta; a lookup over every date, so only while there are any."""
    if not tail_ids and not state.has_dateless_rows():
        return set()
    found = engine.execute(render_named("dashboard_dateless_dates", settings.database, order_ids=tail_ids))
    return {_day(day) for (day,) in found.rows if day is not None}


def _day(value: object) -> date:
    """A date from the engine: a date (DuckDB) or its ISO text (Athena's results)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
