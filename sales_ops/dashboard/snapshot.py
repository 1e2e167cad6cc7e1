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

Where the open dates are more than one statement may read (hundreds of changes/s: a day's orders
pass the cutoff), the statement runs once per slice of the orders (curated/buckets.py, as the
checks do) and the slices' rows are added up (`add_up`): every figure is a count, a sum or a max
of disjoint orders, so each identity of a slice (all time >= today >= last hour; the top products
sum to the total) holds for the sum. The distinct customers of the last hour are the exception:
they are counted by a sketch (sketch.py), marked approximate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sales_ops.curated.buckets import Slice, pinned
from sales_ops.curated.live import live_view_sql, tail_filter, tail_start
from sales_ops.curated.rollups import RunningBuild, date_signatures, running_build, version_pairs
from sales_ops.curated.state import CompactionState
from sales_ops.dashboard import sketch
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


@dataclass(frozen=True)
class LiveRead:
    """dashboard_live's rows of one refresh, added up over its statements."""

    rows: list[dict[str, Any]]
    slices: int  # statements over slices of the orders (1: one statement, every figure exact)


def live_query(settings: Settings, engine: SqlEngine) -> LiveQuery:
    """The statement behind the live panels, read in one statement: bounded once sales_totals has
    a build. Runs one statement itself (the tail's dates)."""
    build = running_build(settings, TOTALS)
    if build is None:
        return LiveQuery(all_of_orders_live(settings), None)
    state = CompactionState.load(settings)
    dates, _ = open_dates(settings, engine, state, build)
    return LiveQuery(_one_statement(settings, state, build, dates), dates)


def _one_statement(settings: Settings, state: CompactionState, build: RunningBuild, dates: list[date]) -> str:
    """dashboard_live over orders_live of the open `dates` plus `build`'s figures of the others."""
    live = Sql(f"(\n{live_view_sql(settings, state, dates)}\n)")
    settled = _settled(settings, build, dates)
    return render_named(
        "dashboard_live", settings.database, live=live, settled=settled, sketched=Sql("FALSE")
    )


def read_live(settings: Settings, engine: SqlEngine) -> LiveRead:
    """The live panels' rows of one refresh: live_query's statement, or where its open dates are
    too big for one statement, one per slice of their orders plus the settled dates' figures."""
    build = running_build(settings, TOTALS)
    if build is None:
        return LiveRead(engine.execute(all_of_orders_live(settings)).as_dicts(), 1)
    state = CompactionState.load(settings)
    dates, tail_bytes = open_dates(settings, engine, state, build)

    def read(part: Slice | None, state: CompactionState) -> list[dict[str, Any]] | None:
        if part is None:
            return None
        live = Sql(f"(\n{live_view_sql(settings, state, dates, part)}\n)")
        sql = render_named(
            "dashboard_live", settings.database, live=live, settled=NOTHING_SETTLED, sketched=Sql("TRUE")
        )
        return engine.execute(sql).as_dicts()

    slices = pinned(settings, read, dates, reserve=tail_bytes)  # every statement reads the tail whole
    if slices == [None]:  # the tail as `state` has it: one statement reads one moment anyway
        return LiveRead(engine.execute(_one_statement(settings, state, build, dates)).as_dicts(), 1)
    settled = engine.execute(str(_settled(settings, build, dates))).as_dicts()
    return LiveRead(add_up([row for rows in slices if rows for row in rows] + settled), len(slices))


def _settled(settings: Settings, build: RunningBuild, dates: list[date]) -> Sql:
    """The figures of the dates not open, as `build` summed them (dashboard_settled.sql)."""
    opened = {d.isoformat() for d in dates}
    return Sql(
        render_named(
            "dashboard_settled",
            settings.database,
            totals=Sql(f"v = {literal(build.version)}"),
            open_partials=version_pairs({d: v for d, v in build.ledger.items() if d in opened}),
        )
    )


SUMMED = (
    "live_orders",
    "orders",
    "units",
    "total_sales",
    "sales_today",
    "orders_today",
    "sales_last_hour",
    "orders_last_hour",
)
LATEST = ("newest_event_time", "customer_rank")


def add_up(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """dashboard_live's rows of several statements over disjoint orders (and the settled dates'
    figures) as one statement over all of them gives: each group's counts and sums added up, its
    newest time the latest; the customers of the last hour estimated from the slices' sketch."""
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault((row["kind"], row["value"]), {"kind": row["kind"], "value": row["value"]})
        for column in SUMMED:
            group[column] = group.get(column, 0) + Decimal(str(row.get(column) or 0))
        for column in LATEST:
            if row.get(column) is not None and (group.get(column) is None or row[column] > group[column]):
                group[column] = row[column]
            group.setdefault(column, None)
    out = [g for g in groups.values() if g["kind"] == "all" or g["live_orders"] != 0]
    ranks = {int(g["value"]): int(g["customer_rank"]) for g in out if g["kind"] == "sketch"}
    for group in out:
        if group["kind"] == "all":
            group["customers_last_hour"] = sketch.estimate(ranks)
            group["customers_approximate"] = True
    return out


def all_of_orders_live(settings: Settings) -> str:
    """dashboard_live over all of orders_live: before the first sales_totals build (and the
    reference the bounded statement is tested against)."""
    db = settings.database
    return render_named(
        "dashboard_live", db, live=Sql(f"{db}.orders_live"), settled=NOTHING_SETTLED, sketched=Sql("FALSE")
    )


def open_dates(
    settings: Settings, engine: SqlEngine, state: CompactionState, build: RunningBuild
) -> tuple[list[date], int]:
    """The dates whose orders may differ from what `build` summed (see the module's docstring),
    and the bytes of the raw tail, which a statement over orders_live reads whole."""
    now = date_signatures(settings, state)  # the same moment of the state as the SQL below
    changed = {d for d in set(now) | set(build.signatures) if now.get(d) != build.signatures.get(d)}
    raw_tail = tail_filter(tail_start(state), settings.bucket)
    tail = engine.execute(render_named("dashboard_tail_dates", settings.database, raw_tail=raw_tail))
    touched = {_day(day) for day, _ in tail.rows if day is not None}
    dateless = sorted({str(order_id) for day, order_id in tail.rows if day is None and order_id})
    touched |= _dateless_dates(settings, engine, state, dateless)
    today = datetime.now(UTC).date()  # the engines' sessions are UTC (current_date)
    dates = {date.fromisoformat(d) for d in changed} | touched | {today - timedelta(days=1), today}
    return sorted(dates), tail.bytes_scanned


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
