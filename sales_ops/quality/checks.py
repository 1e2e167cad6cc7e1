"""Data-quality checks, one function each; the CLI `check` and the Dagster asset checks call these.

Every check returns a `CheckOutcome` (never raises for what it finds): `passed`, a one-line
`summary` a person can act on, and `details` (JSON-serialisable) for machines and UIs.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.catalog import glue
from sales_ops.query import SqlEngine, literal
from sales_ops.schema import ORDER_VALUE_FIELDS, RAW_COLUMNS
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings

# raw_orders as the handler writes it (docs/design.md §2.2) and the crawler types it.
EXPECTED_RAW_COLUMNS: dict[str, frozenset[str]] = {c.name: c.raw_types for c in RAW_COLUMNS}
COMPARED_FIELDS = ORDER_VALUE_FIELDS
SAMPLES = 5
# Error objects read per check run (all are counted): bounds the GETs of a dashboard refresh or a
# check when errors/ fills up; the reasons come from the newest ones.
MAX_ERROR_OBJECTS = 20
# On aws the reconciliation compares a sample, not the whole table, on every refresh (issue 16).
RECONCILE_SAMPLE = 200
SCAN_SEGMENTS = 1000


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
    """No Firehose error records under errors/processing-failed/ (optionally: written since)."""
    name = "no_processing_failed"
    s3 = settings.client("s3")
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=ERROR_PREFIX):
        objects += [o for o in page.get("Contents", []) if since is None or o["LastModified"] >= since]
    if not objects:
        return CheckOutcome(name, True, "no processing-failed records", {"objects": 0, "records": 0})
    objects.sort(key=lambda o: o["LastModified"])
    reasons: Counter[tuple[str, str]] = Counter()
    for obj in objects[-MAX_ERROR_OBJECTS:]:
        body = error_object_text(s3.get_object(Bucket=settings.bucket, Key=obj["Key"])["Body"].read())
        for line in body.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                reasons[("unreadable", "not a JSON line")] += 1
                continue
            reasons[(record.get("errorCode", "?"), record.get("errorMessage", "?"))] += 1
    total = sum(reasons.values())
    read = min(len(objects), MAX_ERROR_OBJECTS)
    top = [{"errorCode": c, "errorMessage": m, "count": n} for (c, m), n in reasons.most_common(10)]
    first = top[0]
    summary = (
        f"{total} processing-failed record(s) in {read} of {len(objects)} object(s); most common: "
        f"{first['errorCode']}: {first['errorMessage']} (x{first['count']})"
    )
    details = {
        "objects": len(objects),
        "objects_read": read,
        "records": total,
        "reasons": top,
        "keys": [o["Key"] for o in objects[-SAMPLES:]],
    }
    return CheckOutcome(name, False, summary, details)


def error_object_text(body: bytes) -> bytes:
    """An error object's lines. Firehose compresses error output with the destination's
    CompressionFormat (GZIP in the template), so gzip is recognised by its magic bytes."""
    if body[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError):
            return b"\xff"  # a torn object: one unreadable line
    return body


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


def check_unique_order_id(engine: SqlEngine) -> CheckOutcome:
    name = "unique_order_id"
    result = engine.named("check_unique_order_id").as_dicts()[0]
    rows, orders = int(result["row_count"]), int(result["order_count"])
    details = {"rows": rows, "distinct_order_ids": orders}
    if rows != orders:
        summary = f"{rows - orders} duplicate order_id row(s) in orders_latest"
        return CheckOutcome(name, False, summary, details)
    return CheckOutcome(name, True, f"{rows} rows, order_id unique", details)


def check_amounts(engine: SqlEngine) -> CheckOutcome:
    """Quantities ≥ 1, prices and totals positive, order_total = quantity * unit_price."""
    name = "amounts"
    result = engine.named("check_amounts").as_dicts()[0]
    counts = {k: int(v or 0) for k, v in result.items() if k != "example_order_id"}
    bad = {k: v for k, v in counts.items() if k != "row_count" and v}
    details = {**counts, "example_order_id": result.get("example_order_id")}
    if bad:
        listed = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in bad.items())
        return CheckOutcome(name, False, f"{listed} (e.g. {result.get('example_order_id')})", details)
    return CheckOutcome(name, True, f"{counts['row_count']} rows with consistent positive amounts", details)


def check_reconciliation(settings: Settings, engine: SqlEngine, sample: int | None = -1) -> CheckOutcome:
    """orders_latest equals DynamoDB, order by order (run once the pipeline has caught up).

    `sample=None` compares the whole table (a consistent Scan): the local default. On aws (the
    default `-1` picks by target) it compares `RECONCILE_SAMPLE` orders from each side instead: one
    page of a random Scan segment (missing or different in orders_latest) and a random sample of
    orders_latest looked up with BatchGetItem (extra), so a refresh never scans the whole table.
    """
    name = "reconciliation"
    if sample == -1:
        sample = None if settings.is_local else RECONCILE_SAMPLE
    columns = f"order_id, {', '.join(COMPARED_FIELDS)}, order_date"
    if sample is None:
        table = scan_orders(settings)
        result = engine.query(f"SELECT {columns} FROM {settings.database}.orders_latest")
        latest = {row["order_id"]: row for row in result.as_dicts()}
        compared = set(table) | set(latest)
    else:
        table = sample_orders(settings, sample)
        ids = ", ".join(literal(i) for i in sorted(table)) or "NULL"
        query = f"SELECT {columns} FROM {settings.database}.orders_latest WHERE order_id IN ({ids})"
        latest = {row["order_id"]: row for row in engine.query(query).as_dicts()}
        picked = engine.query(
            f"SELECT {columns} FROM {settings.database}.orders_latest ORDER BY rand() LIMIT {int(sample)}"
        )
        for row in picked.as_dicts():
            latest.setdefault(row["order_id"], row)
        table.update(get_orders(settings, [i for i in latest if i not in table]))
        compared = set(table) | set(latest)
    missing = sorted(set(table) - set(latest))
    extra = sorted(set(latest) - set(table))
    different: dict[str, dict[str, Any]] = {}
    for order_id in sorted(set(table) & set(latest)):
        diff = _differences(table[order_id], latest[order_id])
        if diff:
            different[order_id] = diff
    details = {
        "dynamodb_orders": len(table),
        "orders_latest_rows": len(latest),
        "sampled": sample is not None,
        "missing": len(missing),
        "extra": len(extra),
        "different": len(different),
        "missing_sample": missing[:SAMPLES],
        "extra_sample": extra[:SAMPLES],
        "different_sample": dict(list(different.items())[:SAMPLES]),
    }
    scope = f"a sample of {len(compared)}" if sample is not None else f"{len(table)}"
    if missing or extra or different:
        summary = (
            f"orders_latest differs from DynamoDB: {len(missing)} missing, {len(extra)} extra, "
            f"{len(different)} different (of {scope} orders)"
        )
        return CheckOutcome(name, False, summary, details)
    return CheckOutcome(name, True, f"{scope} orders identical in DynamoDB and orders_latest", details)


def scan_orders(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every item of the orders table, decoded (numbers as Decimal), by order_id."""
    out = {}
    paginator = settings.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=settings.table, ConsistentRead=True):
        out.update(_decoded(page["Items"]))
    return out


def sample_orders(settings: Settings, size: int) -> dict[str, dict[str, Any]]:
    """Up to `size` items from one random segment of a parallel Scan: one page, not the table."""
    page = settings.client("dynamodb").scan(
        TableName=settings.table,
        ConsistentRead=True,
        TotalSegments=SCAN_SEGMENTS,
        Segment=random.randrange(SCAN_SEGMENTS),
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
    settings: Settings, engine: SqlEngine, max_age_s: float = 3600.0, reconcile: bool = True
) -> list[CheckOutcome]:
    """All checks; one that cannot run at all (e.g. a missing table) fails with the reason."""
    checks: list[tuple[str, Callable[[], CheckOutcome]]] = [
        ("raw_schema", lambda: check_raw_schema(settings)),
        ("no_processing_failed", lambda: check_no_processing_failed(settings)),
        ("freshness", lambda: check_freshness(settings, max_age_s)),
        ("unique_order_id", lambda: check_unique_order_id(engine)),
        ("amounts", lambda: check_amounts(engine)),
    ]
    if reconcile:
        checks.append(("reconciliation", lambda: check_reconciliation(settings, engine)))
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
