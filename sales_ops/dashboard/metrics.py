"""Every panel of the dashboard, computed through the project's SQL engine (DuckDB or Athena).

Each panel comes from a named query (`sales_ops/dashboard/sql/dashboard_*.sql`; the live ones read
`orders_live`), so the page shows exactly what `sales-ops query --named …` would; the
only numbers not from SQL are the failed-records count (the data-quality check's own count) and the
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
Panel = dict[str, Any]


def collect_metrics(settings: Settings, engine: SqlEngine) -> dict[str, Any]:
    """Every panel's data, computed now."""
    started = time.monotonic()
    now = datetime.now(UTC)
    by_product = _panel(lambda: engine.named("dashboard_sales_by_product").as_dicts())
    sales_by = _panel(lambda: engine.named("dashboard_sales_by").as_dicts())
    panels = {
        "total": _derive(by_product, _total),
        "headline": _panel(lambda: _headline(engine)),
        "orders_per_minute": _panel(lambda: _orders_per_minute(engine)),
        "top_products": _derive(by_product, _top_products),
        "by_category": _derive(sales_by, lambda rows: _dimension(rows, "category")),
        "by_channel": _derive(sales_by, lambda rows: _dimension(rows, "channel")),
        "by_region": _derive(sales_by, lambda rows: _dimension(rows, "region")),
        "customers": _panel(lambda: _customers(engine), NO_ROLLUP),
        "inventory": _panel(lambda: _inventory(engine), NO_ROLLUP),
        "failed_records": _panel(lambda: _failed_records(settings)),
        "freshness": _panel(lambda: _freshness(engine, now)),
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

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self.ttl:
                require_reachable(self.settings)
                if self._engine is None:
                    self._engine = self._engine_factory(self.settings)
                self._value = collect_metrics(self.settings, self._engine)
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


def _total(rows: list[dict]) -> dict[str, Any]:
    """The sum of `dashboard_sales_by_product`: the number the browser test checks against."""
    return {
        "total_sales": money(sum((Decimal(str(r["total_sales"] or 0)) for r in rows), Decimal(0))),
        "orders": sum(int(r["orders"]) for r in rows),
        "units": sum(int(r["units"] or 0) for r in rows),
        "products": len(rows),
    }


def _top_products(rows: list[dict]) -> list[dict[str, Any]]:
    ranked = sorted(rows, key=lambda r: Decimal(str(r["total_sales"] or 0)), reverse=True)
    return [
        {
            "product_name": r["product_name"],
            "orders": int(r["orders"]),
            "units": int(r["units"] or 0),
            "total_sales": float(r["total_sales"] or 0),
        }
        for r in ranked[:TOP_PRODUCTS]
    ]


def _dimension(rows: list[dict], dimension: str) -> list[dict[str, Any]]:
    return [
        {"value": r["value"], "orders": int(r["orders"]), "total_sales": float(r["total_sales"] or 0)}
        for r in rows
        if r["dimension"] == dimension
    ]


def _headline(engine: SqlEngine) -> dict[str, Any]:
    (row,) = engine.named("dashboard_headline").as_dicts()
    return {
        "live_orders": int(row["live_orders"]),
        "sales_today": money(row["sales_today"]),
        "orders_today": int(row["orders_today"]),
        "sales_last_hour": money(row["sales_last_hour"]),
        "orders_last_hour": int(row["orders_last_hour"]),
    }


def _orders_per_minute(engine: SqlEngine) -> dict[str, list]:
    """The last 60 minutes, oldest first, minutes without orders included as zeros."""
    this_minute = datetime.now(UTC).replace(second=0, microsecond=0)  # the query's current_timestamp
    found = {int(r["minutes_ago"]): r for r in engine.named("dashboard_orders_per_minute").as_dicts()}
    series: dict[str, list] = {"minutes": [], "orders": [], "sales": []}
    for ago in range(59, -1, -1):
        row = found.get(ago, {})
        series["minutes"].append(_iso(this_minute - timedelta(minutes=ago)))
        series["orders"].append(int(row.get("orders") or 0))
        series["sales"].append(float(row.get("sales") or 0))
    return series


def _customers(engine: SqlEngine) -> dict[str, dict[str, Any]]:
    segments: dict[str, dict[str, Any]] = {"new": {}, "returning": {}} | {
        r["segment"]: r for r in engine.named("dashboard_customers").as_dicts()
    }
    return {
        name: {
            "customers": int(row.get("customers") or 0),
            "active_last_hour": int(row.get("active_last_hour") or 0),
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


def _freshness(engine: SqlEngine, now: datetime) -> dict[str, Any]:
    (row,) = engine.named("dashboard_freshness").as_dicts()
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
