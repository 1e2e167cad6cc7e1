"""Data-quality checks of what landed, one function each; the CLI `check` and the Dagster asset
checks call these, and `run_checks` runs them all (with the reconciliation, reconciliation.py).

Every check returns a `CheckOutcome` (outcome.py; never raises for what it finds): `passed`, a
one-line `summary` a person can act on, and `details` (JSON-serialisable) for machines and UIs.
- Raw side (S3 and Glue): raw_schema, no_processing_failed, no_quarantined_objects, freshness.
- Lake side (SQL on what the last compaction wrote, or everything): unique_order_id, amounts,
  rejected_changes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated.buckets import Slice, pinned
from sales_ops.curated.state import CompactionState
from sales_ops.curated.tables import latest_view_sql
from sales_ops.quality.outcome import SAMPLES, CheckOutcome
from sales_ops.quality.reconciliation import check_reconciliation
from sales_ops.quality.rejected import error_objects, read_error_records
from sales_ops.query import Sql, SqlEngine, literal
from sales_ops.schema import RAW_COLUMNS
from sales_ops.settings import RAW_PREFIX, Settings

# raw_orders as the handler writes it (docs/design.md §2.2) and the crawler types it.
EXPECTED_RAW_COLUMNS: dict[str, frozenset[str]] = {c.name: c.raw_types for c in RAW_COLUMNS}
# Error objects read per check run (all are counted): bounds the GETs of a dashboard refresh or a
# check when errors/ fills up; the reasons come from the newest ones.
MAX_ERROR_OBJECTS = 20


def check_raw_schema(settings: Settings) -> CheckOutcome:
    """raw_orders exists, is partitioned by dt/hour, and has every field of the handler's output."""
    name = "raw_schema"
    table = glue.get_table(settings, glue.RAW_TABLE)
    if table is None:
        return CheckOutcome(name, False, f"{settings.database}.raw_orders does not exist: run the crawler")
    columns = dict(glue.table_columns(table))
    keys = [k for k, _ in glue.partition_keys(table)]
    missing = sorted(set(EXPECTED_RAW_COLUMNS) - set(columns))
    wrong = {
        col: columns[col]
        for col, allowed in EXPECTED_RAW_COLUMNS.items()
        if col in columns and columns[col].split("(")[0] not in allowed
    }
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if wrong:
        problems.append("unexpected types: " + ", ".join(f"{c} {t}" for c, t in sorted(wrong.items())))
    if keys != ["dt", "hour"]:
        problems.append(f"partition keys are {keys}, expected ['dt', 'hour']")
    details = {"columns": columns, "partition_keys": keys, "missing": missing, "wrong_types": wrong}
    if problems:
        return CheckOutcome(name, False, "; ".join(problems), details)
    return CheckOutcome(name, True, f"{len(columns)} columns, partitioned by dt/hour", details)


def check_no_processing_failed(settings: Settings, since: datetime | None = None) -> CheckOutcome:
    """No Firehose error records under errors/processing-failed/ (optionally: written since); else
    fails naming the orders whose changes were rejected, with the reasons (docs/design.md §2.8)."""
    name = "no_processing_failed"
    objects = error_objects(settings, since)
    if not objects:
        return CheckOutcome(name, True, "no processing-failed records", {"objects": 0, "records": 0})
    reasons: Counter[tuple[str, str]] = Counter()
    orders: dict[str, str] = {}  # order_id → reason, newest first
    unnamed = 0
    for obj in reversed(objects[-MAX_ERROR_OBJECTS:]):
        for record in read_error_records(settings, obj["Key"]):
            reasons[(record.error_code, record.reason)] += 1
            if record.order_id is None:
                unnamed += 1
            else:
                orders.setdefault(record.order_id, f"{record.error_code}: {record.reason}")
    total = sum(reasons.values())
    read = min(len(objects), MAX_ERROR_OBJECTS)
    top = [{"errorCode": c, "errorMessage": m, "count": n} for (c, m), n in reasons.most_common(10)]
    first = top[0]
    summary = (
        f"{total} processing-failed record(s) in {read} of {len(objects)} object(s); most common: "
        f"{first['errorCode']}: {first['errorMessage']} (x{first['count']})"
    )
    if orders:
        listed = "; ".join(f"{o} ({why})" for o, why in list(orders.items())[:SAMPLES])
        more = f" and {len(orders) - SAMPLES} more" if len(orders) > SAMPLES else ""
        summary += f"; rejected orders: {listed}{more}"
    details = {
        "objects": len(objects),
        "objects_read": read,
        "records": total,
        "reasons": top,
        "rejected_orders": [{"order_id": o, "reason": why} for o, why in list(orders.items())[: SAMPLES * 4]],
        "records_naming_no_order": unnamed,
        "keys": [o["Key"] for o in objects[-SAMPLES:]],
    }
    return CheckOutcome(name, False, summary, details)


def check_no_quarantined(settings: Settings) -> CheckOutcome:
    """No raw object moved aside by compaction as unreadable (quarantine/)."""
    from sales_ops.curated.quarantine import QUARANTINE_PREFIX, list_quarantined

    name = "no_quarantined_objects"
    found = list_quarantined(settings)
    if not found:
        return CheckOutcome(name, True, "no quarantined raw objects", {"objects": 0})
    first = found[0]
    summary = (
        f"{len(found)} raw object(s) quarantined by compaction as unreadable, e.g. {first.source}: "
        f"{first.reason}; inspect {settings.s3_uri(QUARANTINE_PREFIX)}, then delete them "
        "(or fix them and put them back under raw/)"
    )
    details = {
        "objects": len(found),
        "quarantined": [{"key": q.key, "source": q.source, "reason": q.reason} for q in found[: SAMPLES * 4]],
    }
    return CheckOutcome(name, False, summary, details)


def check_freshness(settings: Settings, max_age_s: float) -> CheckOutcome:
    """The newest raw object is at most max_age_s old (looked for in the newest partition only)."""
    name = "freshness"
    newest = _newest_raw_object(settings)
    if newest is None:
        return CheckOutcome(name, False, "no raw data at all under raw/orders/", {"max_age_s": max_age_s})
    age = (datetime.now(UTC) - newest["LastModified"]).total_seconds()
    details = {"newest_key": newest["Key"], "age_s": round(age, 1), "max_age_s": max_age_s}
    if age > max_age_s:
        summary = f"newest raw data is {age:.0f}s old (limit {max_age_s:.0f}s)"
        return CheckOutcome(name, False, summary, details)
    return CheckOutcome(name, True, f"newest raw data is {age:.0f}s old", details)


def _newest_raw_object(settings: Settings) -> dict[str, Any] | None:
    """Walk dt=…/ then hour=…/ prefixes (sorted) to the newest partition, then its newest object."""
    s3 = settings.client("s3")

    def children(prefix: str) -> list[str]:
        out: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.bucket, Prefix=prefix, Delimiter="/"
        ):
            out += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return sorted(out)

    for day in reversed(children(RAW_PREFIX)):
        for hour in reversed(children(day)):
            objects = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=hour):
                objects += page.get("Contents", [])
            if objects:
                return max(objects, key=lambda o: o["LastModified"])
    return None


@dataclass(frozen=True)
class Written:
    """What the last compaction wrote (docs/design.md §2.8): its deltas, and the order_date
    partitions it changed or rewrote. The per-cycle checks read only these."""

    deltas: list[str]
    dates: list[str]  # every date changed (deltas) or rewritten (a fold or a rebuild)
    rebuilt: list[str]  # dates a rebuild wrote (new rows not in any delta)

    @classmethod
    def load(cls, settings: Settings) -> Written:
        from sales_ops.curated.state import CompactionState

        last = CompactionState.load(settings).last_run
        return cls(list(last.get("deltas", [])), list(last.get("dates", [])), list(last.get("rebuilt", [])))


def _dates_in(dates: list[str]) -> Sql:
    if not dates:
        return Sql("FALSE")
    return Sql(f"order_date IN ({', '.join(literal(date.fromisoformat(d)) for d in sorted(dates))})")


def check_unique_order_id(engine: SqlEngine, full: bool = False) -> CheckOutcome:
    """order_id unique: in the partitions the last compaction changed or rewrote, or everywhere
    (`full`). Unique by construction (§2.5); this catches a file that should not be there."""
    name = "unique_order_id"
    settings = engine.settings
    written = None if full else Written.load(settings)
    view = Sql(f"{settings.database}.orders_latest")
    if written is None:
        counts = [engine.named("check_unique_order_id", latest=view, scope=Sql("TRUE")).rows[0]]
    else:
        days = [date.fromisoformat(d) for d in written.dates]

        def count(part: Slice | None, state: CompactionState) -> tuple[Any, ...]:
            latest = view if part is None else Sql(f"({latest_view_sql(settings, state, days, part)})")
            return engine.named("check_unique_order_id", latest=latest, scope=_dates_in(written.dates)).rows[
                0
            ]

        counts = pinned(settings, count, days)  # a slice of the orders at a time when the dates are big
    rows, orders = sum(int(r[0]) for r in counts), sum(int(r[1]) for r in counts)
    details: dict[str, Any] = {
        "rows": rows,
        "distinct_order_ids": orders,
        "full": full,
        "slices": len(counts),
    }
    where = "orders_latest"
    if written is not None:
        details["partitions"] = written.dates
        where = f"the {len(written.dates)} partition(s) the last compaction wrote"
    if rows != orders:
        summary = f"{rows - orders} duplicate order_id row(s) in {where}"
        return CheckOutcome(name, False, summary, details)
    return CheckOutcome(name, True, f"{rows} rows, order_id unique in {where}", details)


def check_amounts(engine: SqlEngine, full: bool = False) -> CheckOutcome:
    """Quantities ≥ 1, prices and totals positive, order_total = quantity * unit_price: on the rows
    the last compaction wrote, or on the whole table (`full`)."""
    name = "amounts"
    if full:
        deltas, rows = Sql("FALSE"), Sql("TRUE")
    else:
        written = Written.load(engine.settings)
        deltas = Sql(f"delta IN ({literal(written.deltas, top=True)})") if written.deltas else Sql("FALSE")
        rows = _dates_in(written.rebuilt)
    result = engine.named("check_amounts", new_deltas=deltas, new_rows=rows).as_dicts()[0]
    counts = {k: int(v or 0) for k, v in result.items() if k != "example_order_id"}
    bad = {k: v for k, v in counts.items() if k != "row_count" and v}
    details = {**counts, "example_order_id": result.get("example_order_id"), "full": full}
    if bad:
        listed = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in bad.items())
        return CheckOutcome(name, False, f"{listed} (e.g. {result.get('example_order_id')})", details)
    what = "rows" if full else "new rows"
    return CheckOutcome(name, True, f"{counts['row_count']} {what} with consistent positive amounts", details)


def check_rejected(engine: SqlEngine) -> CheckOutcome:
    """No change rejected by compaction for breaking §2.1 that a later good change has not
    superseded; else fails listing the order ids and reasons (docs/design.md §2.5)."""
    name = "rejected_changes"
    database = engine.settings.database
    ids = engine.query(f"SELECT DISTINCT order_id FROM {database}.orders_rejected LIMIT 1000")
    order_ids = sorted(str(r[0]) for r in ids.rows)
    if not order_ids:
        return CheckOutcome(name, True, "no change rejected", {"rejected": 0})
    found = engine.named("check_rejected", order_ids=order_ids).as_dicts()
    if not found:
        return CheckOutcome(name, True, "every rejected change was superseded", {"rejected": 0})
    shown = "; ".join(f"{r['order_id']}: {r['reason']}" for r in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    summary = f"{len(found)} change(s) rejected (not in orders_latest): {shown}{more}"
    return CheckOutcome(name, False, summary, {"rejected": len(found), "changes": found})


def run_checks(
    settings: Settings,
    engine: SqlEngine,
    max_age_s: float = 3600.0,
    reconcile: bool = True,
    reconcile_source: str = "auto",
    full: bool = False,
) -> list[CheckOutcome]:
    """All checks; one that cannot run at all (e.g. a missing table) fails with the reason.
    `unique_order_id` and `amounts` check what the last compaction wrote, or everything (`full`)."""
    checks: list[tuple[str, Callable[[], CheckOutcome]]] = [
        ("raw_schema", lambda: check_raw_schema(settings)),
        ("no_processing_failed", lambda: check_no_processing_failed(settings)),
        ("no_quarantined_objects", lambda: check_no_quarantined(settings)),
        ("freshness", lambda: check_freshness(settings, max_age_s)),
        ("unique_order_id", lambda: check_unique_order_id(engine, full)),
        ("amounts", lambda: check_amounts(engine, full)),
        ("rejected_changes", lambda: check_rejected(engine)),
    ]
    if reconcile:
        checks.append(("reconciliation", lambda: check_reconciliation(settings, engine, reconcile_source)))
    outcomes = []
    for name, check in checks:
        started = time.monotonic()
        try:
            outcome = check()
        except Exception as exc:  # a check that cannot run is a failed check, with the reason
            error = f"{type(exc).__name__}: {exc}"
            outcome = CheckOutcome(name, False, f"could not run: {exc}", {"error": error})
        outcome.details.setdefault("seconds", round(time.monotonic() - started, 3))
        outcomes.append(outcome)
    return outcomes
