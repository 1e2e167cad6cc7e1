"""Every panel of the dashboard, computed through the project's SQL engine (DuckDB or Athena).

Each panel comes from the SQL of `sales_ops/dashboard/sql/dashboard_*.sql`. The panels about
orders now come from one statement, `dashboard_live` (one moment, so no card contradicts another),
over the sales_totals rollup plus orders_live of the dates that may have changed since its build
(`snapshot.py`, issue 20), or over all of orders_live before the first build. The customers panel
reads the segment figures of one build of the hourly customer_activity rollup, reused until the next build
(`RollupReads`). The only numbers not
from SQL are the failed-records count (the data-quality check's own count) and the
age of the newest raw object: the data-quality checks' own (sales_ops.quality).

A panel is `{"status": "ok", "data": …}`, or `{"status": "no_data", "message": …}` when a table it
reads does not exist yet, or `{"status": "error", "message": …}`: one panel failing never blanks
the others. Amounts meant to be compared exactly are strings with two decimals; chart series are
plain numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sales_ops.curated.rollups import running_build
from sales_ops.dashboard.snapshot import read_live
from sales_ops.local.reachable import require_reachable
from sales_ops.quality import check_freshness, check_no_processing_failed
from sales_ops.query import MissingTableError, SqlEngine
from sales_ops.settings import Settings
from sales_ops.targets import engine_for

log = logging.getLogger(__name__)

NO_DATA = "no data yet (run sales-ops local up, or crawl/compact)"
NO_ROLLUP = "no data yet (run crawl/compact/rollup)"
PANEL_ERROR = "this panel's query failed: see the dashboard's log"
TOP_PRODUCTS = 10
LOW_STOCK_SHARE = 0.2  # a product is low on stock below 20 % of its opening stock
RAW_MAX_AGE_S = 300.0  # the freshness check's limit, as shown on the page
CUSTOMERS = "customer_activity"
Panel = dict[str, Any]


class RollupReads:
    """Panels read from one build of a rollup, kept until the rollup has a newer build.

    The customers panel reads the segment figures a customer_activity build wrote (a few rows per
    pass of the build, sales_ops/curated/customers.py), and that table changes once an hour
    (rollups.HOURLY_ROLLUPS), not at each refresh. It reads the build its state names, by version,
    so the figures kept are exactly that build's; checking for a newer one is one S3 GET, no SQL.
    """

    def __init__(self) -> None:
        self._customers: tuple[str, dict[str, dict[str, Any]]] | None = None  # (version, panel)

    def customers(self, settings: Settings, engine: SqlEngine) -> dict[str, dict[str, Any]]:
        build = running_build(settings, CUSTOMERS)
        if build is None:
            raise MissingTableError(CUSTOMERS, f"{CUSTOMERS} has no build yet")
        if self._customers is None or self._customers[0] != build.version:
            self._customers = (build.version, _customers(engine, build.version))
        return self._customers[1]


def collect_metrics(
    settings: Settings, engine: SqlEngine, reads: RollupReads | None = None
) -> dict[str, Any]:
    """Every panel's data, computed now. The panels about orders now come from one statement
    (dashboard_live.sql): one read of orders_live, so they agree with each other. `reads`: the
    rollup panels kept from earlier refreshes (MetricsCache keeps one); None reads them afresh."""
    reads = reads or RollupReads()
    started = time.monotonic()
    now = datetime.now(UTC)
    live = _panel(lambda: _live_groups(settings, engine))
    panels = {
        "total": _derive(live, _total),
        "headline": _derive(live, _headline),
        "orders_per_minute": _derive(live, lambda groups: _orders_per_minute(groups, now)),
        "top_products": _derive(live, _top_products),
        "by_category": _derive(live, lambda groups: _dimension(groups, "category")),
        "by_channel": _derive(live, lambda groups: _dimension(groups, "channel")),
        "by_region": _derive(live, lambda groups: _dimension(groups, "region")),
        "customers": _panel(lambda: reads.customers(settings, engine), NO_ROLLUP),
        "inventory": _panel(lambda: _inventory(engine), NO_ROLLUP),
        "failed_records": _panel(lambda: _failed_records(settings)),
        "freshness": _derive(live, lambda groups: _freshness(groups, now)),
        "raw_freshness": _panel(lambda: _raw_freshness(settings)),
    }
    return {
        "generated_at": _iso(now),
        "target": settings.target,
        "engine": engine.name,
        "seconds": round(time.monotonic() - started, 3),
        "panels": panels,
    }


class MetricsCache:
    """collect_metrics at most once per `ttl` seconds, however many browsers ask.

    The lock is held while computing, so requests arriving meanwhile wait for that result instead
    of starting their own queries. The engine is opened on first use and kept.
    """

    def __init__(
        self,
        settings: Settings,
        ttl: float = 2.0,
        engine_factory: Callable[[Settings], SqlEngine] = engine_for,
    ) -> None:
        self.settings = settings
        self.ttl = ttl
        self._engine_factory = engine_factory
        self._engine: SqlEngine | None = None
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._at = 0.0
        self._reads = RollupReads()

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self.ttl:
                require_reachable(self.settings)
                if self._engine is None:
                    self._engine = self._engine_factory(self.settings)
                self._value = collect_metrics(self.settings, self._engine, self._reads)
                self._at = time.monotonic()
            return self._value

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


# --- panel plumbing ------------------------------------------------------------------------------


def _panel(fetch: Callable[[], Any], no_data: str = NO_DATA) -> Panel:
    """A panel's data; a failure is shown as a fixed message: exception text (S3 URIs, SQL, table
    names) goes to the server's log only, never to the page (docs/design.md §8)."""
    try:
        return {"status": "ok", "data": fetch()}
    except MissingTableError:
        log.info("dashboard panel: a table is missing", exc_info=True)
        return {"status": "no_data", "message": no_data}
    except Exception:  # a display: show the failure in its panel, keep the others
        log.warning("dashboard panel failed", exc_info=True)
        return {"status": "error", "message": PANEL_ERROR}


def _derive(source: Panel, shape: Callable[[Any], Any]) -> Panel:
    """A panel computed from another's data (one query feeding several panels)."""
    if source["status"] != "ok":
        return source
    return _panel(lambda: shape(source["data"]))


def money(value: Any) -> str:
    """An exact amount with two decimals and no separators, e.g. '12345.60'."""
    return f"{Decimal(str(value or 0)).quantize(Decimal('0.01'))}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _as_datetime(value: Any) -> datetime | None:
    """A time from the engine (datetime, or ISO-8601 text as in the raw events), in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- panels --------------------------------------------------------------------------------------


def _live_groups(settings: Settings, engine: SqlEngine) -> dict[str, list[dict]]:
    """dashboard_live's rows by kind ('all', 'product', 'category', 'channel', 'region', 'minute'):
    from the sales_totals rollup plus orders_live of the open dates once it exists (snapshot.py)."""
    groups: dict[str, list[dict]] = {}
    for row in read_live(settings, engine).rows:
        groups.setdefault(row["kind"], []).append(row)
    return groups


def _sold(groups: dict[str, list[dict]], kind: str) -> list[dict]:
    """The values of a kind with at least one sale, biggest amount first (then by name)."""
    rows = [r for r in groups.get(kind, []) if int(r["orders"]) > 0]
    by_name = sorted(rows, key=lambda r: str(r["value"]))
    return sorted(by_name, key=lambda r: Decimal(str(r["total_sales"])), reverse=True)


def _total(groups: dict[str, list[dict]]) -> dict[str, Any]:
    """Sales of every live order (the statement's 'all' row, to which the product rows sum): the
    number the browser test checks."""
    (every,) = groups["all"]
    return {
        "total_sales": money(every["total_sales"]),
        "orders": int(every["orders"]),
        "units": int(every["units"]),
        "products": len(_sold(groups, "product")),
    }


def _top_products(groups: dict[str, list[dict]]) -> list[dict[str, Any]]:
    return [
        {
            "product_name": r["value"],
            "orders": int(r["orders"]),
            "units": int(r["units"]),
            "total_sales": float(r["total_sales"]),
        }
        for r in _sold(groups, "product")[:TOP_PRODUCTS]
    ]


def _dimension(groups: dict[str, list[dict]], dimension: str) -> list[dict[str, Any]]:
    return [
        {"value": r["value"] or "unknown", "orders": int(r["orders"]), "total_sales": float(r["total_sales"])}
        for r in _sold(groups, dimension)
    ]


def _headline(groups: dict[str, list[dict]]) -> dict[str, Any]:
    (row,) = groups["all"]
    return {
        "live_orders": int(row["live_orders"]),
        "sales_today": money(row["sales_today"]),
        "orders_today": int(row["orders_today"]),
        "sales_last_hour": money(row["sales_last_hour"]),
        "orders_last_hour": int(row["orders_last_hour"]),
        "customers_last_hour": int(row["customers_last_hour"]),
        # read a slice of the orders at a time: counted by a sketch, within ~1.6 % (snapshot.py)
        "customers_approximate": bool(row.get("customers_approximate", False)),
    }


def _orders_per_minute(groups: dict[str, list[dict]], now: datetime) -> dict[str, list]:
    """The last 60 minutes, oldest first, minutes without orders included as zeros."""
    this_minute = now.replace(second=0, microsecond=0)  # the query's current_timestamp, to the minute
    found = {int(r["value"]): r for r in groups.get("minute", []) if r["value"] is not None}
    series: dict[str, list] = {"minutes": [], "orders": [], "sales": []}
    for ago in range(59, -1, -1):
        row = found.get(ago, {})
        series["minutes"].append(_iso(this_minute - timedelta(minutes=ago)))
        series["orders"].append(int(row.get("live_orders") or 0))
        series["sales"].append(float(row.get("total_sales") or 0))
    return series


def _customers(engine: SqlEngine, version: str) -> dict[str, dict[str, Any]]:
    rows = engine.named("dashboard_customers", version=version).as_dicts()
    segments: dict[str, dict[str, Any]] = {"new": {}, "returning": {}} | {r["segment"]: r for r in rows}
    return {
        name: {
            "customers": int(row.get("customers") or 0),
            "orders": int(row.get("orders") or 0),
            "spend": float(row.get("spend") or 0),
        }
        for name, row in segments.items()
    }


def _inventory(engine: SqlEngine) -> dict[str, Any]:
    rows = engine.named("dashboard_inventory").as_dicts()

    def low(r: dict) -> bool:
        return r["opening_stock"] is not None and r["stock_left"] < LOW_STOCK_SHARE * r["opening_stock"]

    lowest = [
        {
            "product_name": r["product_name"],
            "category": r["category"],
            "stock_left": int(r["stock_left"]),
            "opening_stock": int(r["opening_stock"]),
            "units_sold_1h": int(r["units_sold_1h"]),
            "low": low(r),
        }
        for r in rows[:TOP_PRODUCTS]
        if r["stock_left"] is not None and r["opening_stock"] is not None
    ]
    return {
        "products": len(rows),
        "low_stock": sum(1 for r in rows if r["stock_left"] is not None and low(r)),
        "out_of_stock": sum(1 for r in rows if r["stock_left"] is not None and r["stock_left"] <= 0),
        "lowest": lowest,
        "as_of": _iso(_as_datetime(rows[0]["as_of"])) if rows else None,
    }


def _failed_records(settings: Settings) -> dict[str, Any]:
    """The data-quality check's own count of Firehose processing-failed records."""
    outcome = check_no_processing_failed(settings)
    return {
        "count": int(outcome.details.get("records", 0)),
        "objects": int(outcome.details.get("objects", 0)),
        "summary": outcome.summary,
    }


def _freshness(groups: dict[str, list[dict]], now: datetime) -> dict[str, Any]:
    """The newest change the live state reflects (its event time, as in the raw event)."""
    (row,) = groups["all"]
    newest = _as_datetime(row["newest_event_time"])
    return {
        "newest_event_time": _iso(newest),
        "age_seconds": None if newest is None else max(0.0, round((now - newest).total_seconds(), 1)),
    }


def _raw_freshness(settings: Settings) -> dict[str, Any]:
    """Age of the newest raw object, as the freshness check sees it (a few cheap S3 listings)."""
    outcome = check_freshness(settings, max_age_s=RAW_MAX_AGE_S)
    return {
        "newest_key": outcome.details.get("newest_key"),
        "age_seconds": outcome.details.get("age_s"),
        "passed": outcome.passed,
    }
