"""Data-quality checks, one function each; the CLI `check` and the Dagster asset checks call these.

Every check returns a `CheckOutcome` (never raises for what it finds): `passed`, a one-line
`summary` a person can act on, and `details` (JSON-serialisable) for machines and UIs.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.catalog import glue
from sales_ops.quality.rejected import error_objects, read_error_records, rejected_orders
from sales_ops.query import Sql, SqlEngine, literal
from sales_ops.schema import ORDER_VALUE_FIELDS, RAW_COLUMNS
from sales_ops.settings import RAW_PREFIX, Settings

# raw_orders as the handler writes it (docs/design.md §2.2) and the crawler types it.
EXPECTED_RAW_COLUMNS: dict[str, frozenset[str]] = {c.name: c.raw_types for c in RAW_COLUMNS}
COMPARED_FIELDS = ORDER_VALUE_FIELDS
SAMPLES = 5
# Error objects read per check run (all are counted): bounds the GETs of a dashboard refresh or a
# check when errors/ fills up; the reasons come from the newest ones.
MAX_ERROR_OBJECTS = 20
# On aws the reconciliation compares samples by key, not the whole table, on every refresh (issue
# 20): at most RECONCILE_SAMPLE orders each way, from at most RECONCILE_DATES order_date partitions.
RECONCILE_SAMPLE = 200
RECONCILE_DATES = 4
SCAN_PAGE = 1000  # items of the one Scan page the table-side sample is drawn from (≤ 1 MB)
MAX_SCAN_SEGMENTS = 1_000_000  # DynamoDB's limit on TotalSegments


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


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
    written = None if full else Written.load(engine.settings)
    scope = Sql("TRUE") if written is None else _dates_in(written.dates)
    result = engine.named("check_unique_order_id", scope=scope).as_dicts()[0]
    rows, orders = int(result["row_count"]), int(result["order_count"])
    details: dict[str, Any] = {"rows": rows, "distinct_order_ids": orders, "full": full}
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


BACKFILL_HINT = "run `sales-ops backfill --wait` to repair it from a DynamoDB export"


@dataclass
class Reconciliation:
    """orders_latest against a view of the table (a scan, or an export as of `as_of`)."""

    table_orders: int
    latest_rows: int
    missing: list[str]
    extra: list[str]
    different: dict[str, dict[str, Any]]
    newer: list[str] = field(default_factory=list)  # changed in the lake after the export: not compared
    compared: int = 0  # table orders compared (those not newer in the lake)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.extra or self.different)


def reconcile(
    table: Iterable[dict[str, Any]],
    lake: dict[str, dict[str, Any]],
    as_of: str | None = None,
    on_mismatch: Callable[[str, dict[str, Any]], None] | None = None,
) -> Reconciliation:
    """Compare the table's orders (streamed, e.g. from an export) with the lake's, order by order.

    `lake` maps order_id to its orders_latest row, or (with `is_deleted` true) its tombstone.
    With `as_of` (an export's time, ISO-8601), orders whose lake state is from at or after it are
    left out: the export cannot say what they should be. `on_mismatch(kind, order)` sees each
    missing or different table item and each extra lake row (the backfill writes them).
    """
    since = _time(as_of) if as_of else None
    newer = {o for o, row in lake.items() if since and _time(row["last_event_time"]) >= since}
    report = on_mismatch or (lambda kind, order: None)
    seen: set[str] = set()
    missing: list[str] = []
    different: dict[str, dict[str, Any]] = {}
    for item in table:
        order_id = item["order_id"]
        seen.add(order_id)
        row = lake.get(order_id)
        if order_id in newer:
            continue
        if row is None or row.get("is_deleted"):
            missing.append(order_id)
            report("missing", item)
            continue
        diff = _differences(item, row)
        if diff:
            different[order_id] = diff
            report("different", item)
    extra = sorted(
        o for o, row in lake.items() if not row.get("is_deleted") and o not in seen and o not in newer
    )
    for order_id in extra:
        report("extra", lake[order_id])
    latest = sum(1 for row in lake.values() if not row.get("is_deleted"))
    compared = len(seen - newer)
    return Reconciliation(len(seen), latest, sorted(missing), extra, different, sorted(newer), compared)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def lake_state(
    settings: Settings, engine: SqlEngine, with_tombstones: bool = True
) -> tuple[dict[str, dict[str, Any]], int]:
    """Each order's latest state in the lake (its orders_latest row, else its current tombstone),
    and the bytes the engine scanned for it."""
    from sales_ops.curated.tables import DELETED, current_versions

    current = current_versions(settings)
    pairs = [f"(order_date = {literal(d)} AND v = {literal(v + DELETED)})" for d, v in current.items()]
    tombstones = Sql(" OR ".join(pairs)) if with_tombstones and pairs else Sql("FALSE")
    result = engine.named("lake_state", current_tombstones=tombstones)
    out: dict[str, dict[str, Any]] = {}
    for row in result.as_dicts():
        if row["order_id"] not in out or not row["is_deleted"]:
            out[row["order_id"]] = row
    return out, result.bytes_scanned


def check_reconciliation(settings: Settings, engine: SqlEngine, source: str = "auto") -> CheckOutcome:
    """orders_latest equals the table, order by order (run once the pipeline has caught up).

    `source` "scan" reads the table (consistent Scan, read capacity for every item) and the whole
    of orders_latest; "export" reads the latest completed DynamoDB export from S3 instead (no table
    reads; docs/deploy-aws.md states the cost) and compares the orders the lake has not changed
    since that export; "sample" compares samples by key, so its work does not grow with the
    history (see `_sampled`). "auto" is a scan locally (cheap on the emulator) and a sample on aws.
    An order missing from the lake, or different, whose latest change the Lambda rejected is
    reported as rejected, with the reason, not as missing (backfill cannot repair it).
    """
    name = "reconciliation"
    as_of = None
    if source == "auto":
        source = "scan" if settings.is_local else "sample"
    if source == "export":
        from sales_ops.backfill.export import ExportReader, latest_export
        from sales_ops.curated.baseline import snapshot_time

        info = latest_export(settings)
        if info is None:
            summary = "no completed DynamoDB export to reconcile with; " + BACKFILL_HINT
            return CheckOutcome(name, False, summary)
        table: Iterable[dict[str, Any]] = ExportReader(settings, info).items()
        as_of = snapshot_time(info.export_time)
        lake, scanned = lake_state(settings, engine)
    elif source == "scan":
        table = scan_orders(settings).values()
        lake, scanned = lake_state(settings, engine, with_tombstones=False)
    elif source == "sample":
        table, lake, scanned = _sampled(settings, engine)
    else:
        raise ValueError(f"reconciliation source must be auto, scan, export or sample, not {source!r}")
    result = reconcile(table, lake, as_of)
    rejected = rejected_orders(settings, set(result.missing) | set(result.different))
    missing = [o for o in result.missing if o not in rejected]
    different = {o: d for o, d in result.different.items() if o not in rejected}
    details = {
        "source": source,
        "sampled": source == "sample",
        "as_of": as_of,
        "bytes_scanned": scanned,
        "dynamodb_orders": result.table_orders,
        "orders_latest_rows": result.latest_rows,
        "missing": len(missing),
        "extra": len(result.extra),
        "different": len(different),
        "rejected": len(rejected),
        "newer_than_export": len(result.newer),
        "missing_sample": missing[:SAMPLES],
        "extra_sample": result.extra[:SAMPLES],
        "different_sample": dict(list(different.items())[:SAMPLES]),
        "rejected_sample": dict(list(sorted(rejected.items()))[:SAMPLES]),
    }
    sides = {"scan": "DynamoDB", "sample": "a sample of DynamoDB"}
    against = sides.get(source, f"the DynamoDB export of {as_of}")
    # Rejected changes are the no_processing_failed check's failure (the item must be fixed at its
    # source); failing here as well would only start backfills that cannot repair them.
    note = ""
    if rejected:
        listed = "; ".join(f"{o} ({why})" for o, why in sorted(rejected.items())[:SAMPLES])
        note = f"; {len(rejected)} order(s) rejected by the pipeline, not in the lake as they are: {listed}"
    if missing or result.extra or different:
        summary = (
            f"orders_latest differs from {against}: {len(missing)} missing, "
            f"{len(result.extra)} extra, {len(different)} different "
            f"(of {result.table_orders} orders); {BACKFILL_HINT}{note}"
        )
        return CheckOutcome(name, False, summary, details)
    summary = f"{result.compared - len(rejected)} orders identical in {against} and orders_latest{note}"
    if result.newer:
        summary += f" ({len(result.newer)} changed since the export, not compared)"
    return CheckOutcome(name, True, summary, details)


def _sampled(
    settings: Settings, engine: SqlEngine, rng: random.Random | None = None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int]:
    """Samples of both sides, each looked up in the other by key (the table's items, the lake's rows
    for the same orders, and the bytes the engine scanned).

    Table → lake: one page of a random Scan segment; its items of at most `RECONCILE_DATES` order
    dates (chosen through random items, so busy days weigh more) are looked up in orders_latest with
    `order_date IN (…) AND order_id IN (…)`: partition pruning, and row-group statistics on the
    order_id-sorted files. Lake → table: `RECONCILE_SAMPLE` random rows of the same partitions
    (random ones when the page has no dated item), looked up in DynamoDB with BatchGetItem. Both
    read the same few partitions, never the whole table: the bytes depend on a day's volume, not
    on the history. Items whose created_at is not a date cannot be placed in a partition and are all
    compared (they are missing from the lake, or rejected).
    """
    rng = rng or random.Random()
    page = sample_orders(settings, SCAN_PAGE, rng)
    dated = {o: _order_date(item) for o, item in page.items()}
    picks = [d for d in dated.values() if d is not None]
    chosen: set[date] = set()
    while picks and len(chosen) < RECONCILE_DATES:
        chosen.add(picks.pop(rng.randrange(len(picks))))
    items = {o: item for o, item in page.items() if dated[o] is None or dated[o] in chosen}
    items = dict(list(items.items())[:RECONCILE_SAMPLE])
    looked_up = [o for o in items if dated[o] is not None]
    lake, scanned = lake_rows(settings, engine, {dated[o] for o in looked_up}, looked_up)
    if not chosen:  # an empty table (or no dated item): random partitions of the lake
        partitions = sorted(current_dates(settings))
        chosen = set(rng.sample(partitions, min(RECONCILE_DATES, len(partitions))))
    drawn, drawn_bytes = lake_rows(settings, engine, chosen, None, RECONCILE_SAMPLE)
    items.update(get_orders(settings, [o for o in drawn if o not in items]))
    return list(items.values()), lake | drawn, scanned + drawn_bytes


def lake_rows(
    settings: Settings,
    engine: SqlEngine,
    dates: set[date] | set[date | None],
    order_ids: list[str] | None,
    limit: int | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """orders_latest rows of these order_date partitions (and these orders; or `limit` random
    rows), by order_id, and the bytes scanned. No dates: nothing read."""
    days = sorted(d for d in dates if d is not None)
    if not days or order_ids == []:
        return {}, 0
    where = f"order_date IN ({literal(days, top=True)})"
    if order_ids is not None:
        where += f" AND order_id IN ({literal(sorted(order_ids), top=True)})"
    most = int(limit) if limit else len(order_ids or ())  # looked up by key: every one of them
    result = engine.named("lake_rows", where=Sql(where), limit=most)
    return {row["order_id"]: row for row in result.as_dicts()}, result.bytes_scanned


def current_dates(settings: Settings) -> list[date]:
    """The order_date partitions of orders_latest (the Glue catalog: no data read)."""
    from sales_ops.curated.tables import current_versions

    return list(current_versions(settings))


def _order_date(item: dict[str, Any]) -> date | None:
    """The order_date partition an item belongs to: its created_at's date (None: not a date)."""
    created = item.get("created_at")
    try:
        return date.fromisoformat(created[:10]) if isinstance(created, str) else None
    except ValueError:
        return None


def scan_orders(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every item of the orders table, decoded (numbers as Decimal), by order_id."""
    out = {}
    paginator = settings.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=settings.table, ConsistentRead=True):
        out.update(_decoded(page["Items"]))
    return out


def sample_orders(
    settings: Settings, size: int, rng: random.Random | None = None
) -> dict[str, dict[str, Any]]:
    """About `size` items from one random segment of a parallel Scan: one page, not the table.

    The table is cut into segments of about `size` items each (DescribeTable's ItemCount), so a
    small table is one segment and a large one is never read whole.
    """
    client = settings.client("dynamodb")
    items = int(client.describe_table(TableName=settings.table)["Table"].get("ItemCount", 0))
    segments = max(1, min(MAX_SCAN_SEGMENTS, items // max(1, size)))
    page = client.scan(
        TableName=settings.table,
        ConsistentRead=True,
        TotalSegments=segments,
        Segment=(rng or random.Random()).randrange(segments),
        Limit=size,
    )
    return _decoded(page["Items"])


def get_orders(settings: Settings, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    """These orders from DynamoDB (consistent reads, ≤ 100 keys a request); absent ones are left out."""
    client = settings.client("dynamodb")
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(order_ids), 100):
        keys = [{"order_id": {"S": k}} for k in order_ids[i : i + 100]]
        request = {settings.table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            out.update(_decoded(answer["Responses"].get(settings.table, [])))
            request = answer.get("UnprocessedKeys") or {}
    return out


def table_item_count(settings: Settings) -> int:
    """Items in the orders table: exact (a COUNT scan) locally; on aws DescribeTable's ItemCount,
    which DynamoDB refreshes about every six hours, instead of reading the whole table each time."""
    client = settings.client("dynamodb")
    if settings.is_local:
        pages = client.get_paginator("scan").paginate(TableName=settings.table, Select="COUNT")
        return sum(page["Count"] for page in pages)
    return int(client.describe_table(TableName=settings.table)["Table"].get("ItemCount", 0))


def _decoded(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    deserializer = TypeDeserializer()
    out = {}
    for item in items:
        order = {k: deserializer.deserialize(v) for k, v in item.items()}
        out[order["order_id"]] = order
    return out


def _differences(item: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    diff = {}
    for name in COMPARED_FIELDS:
        want, got = item.get(name), row.get(name)
        exact = isinstance(want, Decimal) and got is not None
        if not (Decimal(str(got)) == want if exact else want == got):
            diff[name] = {"dynamodb": _plain(want), "orders_latest": _plain(got)}
    created = item.get("created_at")
    if isinstance(created, str) and str(row.get("order_date")) != created[:10]:
        diff["order_date"] = {"dynamodb": created[:10], "orders_latest": _plain(row.get("order_date"))}
    return diff


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


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
