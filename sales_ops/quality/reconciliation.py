"""The reconciliation check: orders_latest against the DynamoDB table, order by order
(docs/design.md §2.8), from a scan, a sample by key, or the latest export; and the table reads it
uses (scan, sample, get by key, item count).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.quality.outcome import SAMPLES, CheckOutcome
from sales_ops.quality.rejected import rejected_orders
from sales_ops.query import Sql, SqlEngine, literal
from sales_ops.schema import ORDER_VALUE_FIELDS
from sales_ops.settings import Settings

COMPARED_FIELDS = ORDER_VALUE_FIELDS
# On aws the reconciliation compares samples by key, not the whole table, on every refresh (issue
# 20): at most RECONCILE_SAMPLE orders each way, from at most RECONCILE_DATES order_date partitions.
RECONCILE_SAMPLE = 200
RECONCILE_DATES = 4
SCAN_PAGE = 1000  # items of the one Scan page the table-side sample is drawn from (≤ 1 MB)
MAX_SCAN_SEGMENTS = 1_000_000  # DynamoDB's limit on TotalSegments
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
    drawn, drawn_bytes = lake_rows(settings, engine, chosen, None, RECONCILE_SAMPLE, rng)
    items.update(get_orders(settings, [o for o in drawn if o not in items]))
    return list(items.values()), lake | drawn, scanned + drawn_bytes


def lake_rows(
    settings: Settings,
    engine: SqlEngine,
    dates: set[date] | set[date | None],
    order_ids: list[str] | None,
    limit: int | None = None,
    rng: random.Random | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """orders_latest rows of these order_date partitions (and these orders; or `limit` random
    rows), by order_id, and the bytes scanned. No dates: nothing read. Dates too big to read at
    once are read a slice of the orders at a time (curated/buckets.py): the orders looked up in
    the slices that hold them, the random rows drawn from one random slice."""
    from sales_ops.curated.buckets import Slice, pinned, reading_slices
    from sales_ops.curated.state import CompactionState
    from sales_ops.curated.tables import latest_view_sql

    days = sorted(d for d in dates if d is not None)
    if not days or order_ids == []:
        return {}, 0
    where = f"order_date IN ({literal(days, top=True)})"
    most = int(limit) if limit else len(order_ids or ())  # looked up by key: every one of them

    def read(part: Slice | None, state: CompactionState) -> tuple[list[dict[str, Any]], int]:
        latest = Sql(f"{settings.database}.orders_latest")
        ids = order_ids
        if part is not None:
            latest = Sql(f"({latest_view_sql(settings, state, days, part)})")
            ids = None if order_ids is None else [o for o in order_ids if part.holds(o)]
            if ids == []:
                return [], 0
        keys = "" if ids is None else f" AND order_id IN ({literal(sorted(ids), top=True)})"
        result = engine.named("lake_rows", latest=latest, where=Sql(where + keys), limit=most)
        return result.as_dicts(), result.bytes_scanned

    if order_ids is None:  # random rows: those of one random slice (the hash spreads orders evenly)
        state = CompactionState.load(settings)
        reads = [read((rng or random).choice(reading_slices(settings, state, days)), state)]
    else:
        reads = pinned(settings, read, days)
    return {row["order_id"]: row for rows, _ in reads for row in rows}, sum(n for _, n in reads)


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
