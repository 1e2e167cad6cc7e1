"""Independent views of the pipeline's data for tests: raw S3 replayed, and DynamoDB scanned.

Deliberately simple Python, not the project's SQL: these are what the pipeline is checked against.
"""

from __future__ import annotations

import json
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.raw_objects import decode_body
from sales_ops.schema import ORDER_ATTRIBUTES
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings

ORDER_FIELDS = ORDER_ATTRIBUTES


def list_keys(settings: Settings, prefix: str) -> list[str]:
    s3 = settings.client("s3")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def read_lines(settings: Settings, prefix: str) -> list[dict]:
    """Every JSON line under `prefix`, numbers as Decimal so no precision is lost."""
    s3 = settings.client("s3")
    rows = []
    for key in list_keys(settings, prefix):
        body = decode_body(s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read()).decode()
        assert body.endswith("\n"), f"{key} is not newline-terminated"
        rows += [json.loads(line, parse_float=Decimal) for line in body.splitlines()]
    return rows


def raw_events(settings: Settings) -> list[dict]:
    return read_lines(settings, RAW_PREFIX)


def error_records(settings: Settings) -> list[dict]:
    return read_lines(settings, ERROR_PREFIX)


def replay(events: list[dict]) -> dict[str, dict]:
    """Latest event per order by sequence number (as a number); deleted orders dropped."""
    latest: dict[str, dict] = {}
    for event in events:
        current = latest.get(event["order_id"])
        if current is None or int(event["sequence_number"]) > int(current["sequence_number"]):
            latest[event["order_id"]] = event
    return {oid: e for oid, e in latest.items() if not e["is_deleted"]}


def dynamodb_items(settings: Settings) -> dict[str, dict]:
    """Every item in the table, decoded to Python (numbers as Decimal)."""
    deserializer = TypeDeserializer()
    items: dict[str, dict] = {}
    paginator = settings.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=settings.table):
        for raw in page["Items"]:
            item = {k: deserializer.deserialize(v) for k, v in raw.items()}
            items[item["order_id"]] = item
    return items


def as_order(event: dict) -> dict:
    """A raw event's order attributes, with `extra` folded back in, comparable to a DDB item.

    `extra` is JSON text (docs/design.md §2.2); an object is accepted too (lakes written before).
    """
    order = {k: event[k] for k in ORDER_FIELDS if event.get(k) is not None}
    extra = event.get("extra") or {}
    order.update(json.loads(extra, parse_float=Decimal) if isinstance(extra, str) else extra)
    return {k: _plain(v) for k, v in order.items()}


def _plain(value):
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def assert_replay_matches_dynamodb(settings: Settings) -> int:
    """Replaying raw S3 gives exactly the table, order by order; returns the number of orders."""
    table = {oid: _plain(item) for oid, item in dynamodb_items(settings).items()}
    replayed = {oid: as_order(e) for oid, e in replay(raw_events(settings)).items()}
    missing = sorted(set(table) - set(replayed))
    extra = sorted(set(replayed) - set(table))
    assert not missing, f"{len(missing)} orders in DynamoDB but not in S3, e.g. {missing[:3]}"
    assert not extra, f"{len(extra)} orders in S3 but not (or no longer) in DynamoDB, e.g. {extra[:3]}"
    different = [oid for oid in table if table[oid] != replayed[oid]]
    assert not different, (
        f"{len(different)} orders differ, e.g. {table[different[0]]} vs {replayed[different[0]]}"
    )
    return len(table)


def order_item(order_id: str, **overrides: dict[str, str] | None) -> dict[str, dict[str, str]]:
    """A DynamoDB item that meets docs/design.md §2.1 (the Lambda rejects one that does not);
    ``overrides`` replace attributes (None removes one)."""
    now = "2026-11-22T14:03:11.000Z"
    item = {
        "order_id": {"S": order_id},
        "customer_id": {"S": "cus-test"},
        "product_id": {"S": "sku-0001"},
        "product_name": {"S": "Test Mug"},
        "category": {"S": "home"},
        "quantity": {"N": "2"},
        "unit_price": {"N": "5.00"},
        "order_total": {"N": "10.00"},
        "status": {"S": "PAID"},
        "channel": {"S": "web"},
        "region": {"S": "us-east"},
        "created_at": {"S": now},
        "updated_at": {"S": now},
    }
    for name, value in overrides.items():
        if value is None:
            item.pop(name, None)
        else:
            item[name] = value
    return item
