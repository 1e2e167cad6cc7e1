"""Changes the pipeline rejected: Firehose's error records under errors/processing-failed/.

A record the Lambda answers `ProcessingFailed` for (docs/design.md §2.2) is stored by Firehose as an
error record whose `rawData` is the record's data unchanged: base64 of the Kinesis record, which is
the DynamoDB stream record the Pipe put there. So its `dynamodb.Keys.order_id` names the order the
rejected change belongs to. The checks use this to report such an order as *rejected* (with the
reason) instead of as missing from the lake (docs/design.md §2.8).
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from sales_ops.raw_objects import decode_body
from sales_ops.settings import ERROR_PREFIX, Settings

# What Firehose itself writes as errorMessage for a ProcessingFailed record on AWS; the local
# stand-in writes the handler's own reason instead. Either way the reason is re-derived below.
GENERIC_MESSAGE = "ProcessingFailed status set for record"


@dataclass(frozen=True)
class ErrorRecord:
    """One Firehose error record: its code and reason, and the order it names (None: none readable)."""

    key: str  # the error object it is in
    error_code: str
    reason: str
    order_id: str | None


def error_objects(settings: Settings, since: datetime | None = None) -> list[dict[str, Any]]:
    """The error objects (S3 listing entries), oldest first; optionally only those written since."""
    s3 = settings.client("s3")
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=ERROR_PREFIX):
        objects += [o for o in page.get("Contents", []) if since is None or o["LastModified"] >= since]
    return sorted(objects, key=lambda o: o["LastModified"])


def read_error_records(settings: Settings, key: str) -> Iterator[ErrorRecord]:
    """Every record of one error object (a line that is not JSON is an 'unreadable' record)."""
    body = settings.client("s3").get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    for line in error_object_text(body).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            yield ErrorRecord(key, "unreadable", "not a JSON line", None)
            continue
        if not isinstance(record, dict):
            yield ErrorRecord(key, "unreadable", "not a JSON object", None)
            continue
        raw = record.get("rawData")
        code = str(record.get("errorCode", "?"))
        yield ErrorRecord(key, code, _reason(str(record.get("errorMessage", "?")), raw), _order_id(raw))


def error_object_text(body: bytes) -> bytes:
    """An error object's lines. Firehose compresses error output with the destination's
    CompressionFormat (GZIP in the template), so gzip is recognised by its magic bytes."""
    try:
        return decode_body(body)
    except (OSError, EOFError, zlib.error):
        return b"\xff"  # a torn object: one unreadable line


def rejected_orders(settings: Settings, order_ids: set[str], max_objects: int = 200) -> dict[str, str]:
    """Which of these orders have a rejected change, and why (newest error objects first, at most
    `max_objects` read; it stops once every order asked about is explained)."""
    found: dict[str, str] = {}
    if not order_ids:
        return found
    for obj in reversed(error_objects(settings)[-max_objects:]):
        for record in read_error_records(settings, obj["Key"]):
            if record.order_id in order_ids and record.order_id not in found:
                found[record.order_id] = f"{record.error_code}: {record.reason}"
        if len(found) == len(order_ids):
            break
    return found


def _order_id(raw: Any) -> str | None:
    """The order a rejected stream record names: dynamodb.Keys.order_id, else an image's order_id."""
    try:
        record = json.loads(base64.b64decode(str(raw), validate=True))
        change = record["dynamodb"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(change, dict):
        return None
    for part in ("Keys", "NewImage", "OldImage"):
        value = change.get(part)
        key = value.get("order_id") if isinstance(value, dict) else None
        if isinstance(key, dict) and isinstance(key.get("S"), str) and key["S"]:
            return str(key["S"])
    return None


def _reason(message: str, raw: Any) -> str:
    """Firehose's message, or (on AWS, where it is generic) the handler's own reason for the data."""
    if message != GENERIC_MESSAGE or not isinstance(raw, str):
        return message
    try:
        explained = _handler().explain_failure(raw)
    except Exception:  # the reason is a courtesy: never fail the check for it
        return message
    return str(explained) if explained else message


@functools.cache
def _handler() -> ModuleType:
    from sales_ops.local.firehose import load_handler  # the Lambda's own file, loaded by path

    return load_handler()
