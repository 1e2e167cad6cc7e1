"""Synthetic raw history, exactly as the pipeline writes it, without going through DynamoDB.

For benchmarks and tests that need months of orders (hundreds of thousands of them), which the
emulator's DynamoDB could not take in reasonable time. The orders come from the mock load's `Shop`
(same catalogue, customers, lifecycles, deletes); their changes get times spread over a period,
become DynamoDB stream records in the Pipe's Lambda-event shape (NEW_AND_OLD_IMAGES, sequence
numbers of 21 digits, increasing), go through the real Lambda handler, and land in S3 the way the
Firehose stand-in delivers them: raw/orders/dt=…/hour=… of each event's time, objects of at most
1 MiB (before compression) named `orders-raw-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz`, gzip as Firehose
writes them by default (`Settings.raw_compression`: UNCOMPRESSED gives plain JSON, no extension).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType

import orjson

from sales_ops.load.shop import Shop, _attr
from sales_ops.raw_objects import encode_body, object_name
from sales_ops.settings import RAW_PREFIX, Settings

OBJECT_BYTES = 1024 * 1024  # Firehose's buffer size hint (1 MiB)
SEQUENCE_START = 10**20  # 21 digits: past BIGINT, as real DynamoDB sequence numbers are
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class TimedChange:
    at: float  # epoch seconds
    order_id: str
    op: str  # put | delete
    fields: dict = field(default_factory=dict)


def plan_changes(
    orders: int, start: datetime, end: datetime, seed: int = 1, keys_only_deletes: float = 0.0
) -> list[TimedChange]:
    """Every change of `orders` orders created uniformly in [start, end), in time order.

    Steps follow each order's lifecycle with realistic gaps (paid within the hour, shipped within
    two days, delivered within five, returned within ten, deleted later still); steps after `end`
    have not happened yet. `keys_only_deletes` is the share of deletes sent without OldImage.
    """
    shop = Shop(seed)
    rng = random.Random(seed)
    t0, span = start.timestamp(), (end - start).total_seconds()
    changes: list[TimedChange] = []
    for _ in range(orders):
        at = t0 + rng.random() * span
        for step in shop.plan_order():
            if at >= t0 + span:
                break
            fields = dict(step.fields)
            if step.op == "delete" and rng.random() < keys_only_deletes:
                fields["__keys_only"] = True
            changes.append(TimedChange(at, step.order_id, step.op, fields))
            at += _gap(rng, fields.get("status"), step.op)
    changes.sort(key=lambda c: c.at)
    return changes


def _gap(rng: random.Random, status: str | None, op: str) -> float:
    """Seconds until the order's next change, by the step just taken."""
    if status in (None, "PLACED"):
        return rng.uniform(60, HOUR)
    if status == "PAID":
        return rng.uniform(2 * HOUR, 2 * DAY)
    if status == "SHIPPED":
        return rng.uniform(DAY, 5 * DAY)
    if status == "DELIVERED":
        return rng.uniform(DAY, 10 * DAY)
    return rng.uniform(HOUR, 20 * DAY)


class ChangeStream:
    """Turns changes into DynamoDB stream records, keeping each order's state across calls.

    Records are in the Lambda-event shape the Pipe forwards; sequence numbers keep increasing from
    one call to the next, so a history can be written in several parts (e.g. old, then new).
    """

    def __init__(
        self, region: str = "us-east-1", sequence_start: int = SEQUENCE_START, seed: int = 1
    ) -> None:
        self.region = region
        self.arn = f"arn:aws:dynamodb:{region}:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
        self.next_sequence = sequence_start
        self.state: dict[str, dict] = {}
        self.images: dict[str, dict] = {}
        self.rng = random.Random(seed)

    def records(self, changes: Iterable[TimedChange]) -> Iterator[dict]:
        for change in changes:
            yield self._record(change)

    def _record(self, change: TimedChange) -> dict:
        stamp = datetime.fromtimestamp(change.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        old = self.images.get(change.order_id)  # the previous NewImage, already typed
        self.next_sequence += 100
        ddb = {
            "ApproximateCreationDateTime": int(change.at),
            "Keys": {"order_id": {"S": change.order_id}},
            "SequenceNumber": str(self.next_sequence),
            "SizeBytes": 256,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if change.op == "delete":
            self.state.pop(change.order_id, None)
            self.images.pop(change.order_id, None)
            name = "REMOVE"
            if old is not None and not change.fields.get("__keys_only"):
                ddb["OldImage"] = old
        else:
            name = "MODIFY" if old is not None else "INSERT"
            order = self.state.setdefault(change.order_id, {"created_at": stamp})
            order.update(change.fields)
            order["updated_at"] = stamp
            order["order_total"] = (Decimal(order["quantity"]) * order["unit_price"]).quantize(
                Decimal("0.01")
            )
            ddb["NewImage"] = self.images[change.order_id] = _item(order)
            if old is not None:
                ddb["OldImage"] = old
        return {
            "eventID": uuid.UUID(int=self.rng.getrandbits(128)).hex,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": ddb,
            "eventSourceARN": self.arn,
        }

    def live_orders(self) -> dict[str, dict]:
        """The orders as the table holds them after the changes so far (the truth to compare to)."""
        return self.state


def _item(order: dict) -> dict:
    return {key: _attr(value) for key, value in order.items()}


def transform(records: list[dict], handler_module: ModuleType | None = None) -> Iterator[tuple[str, bytes]]:
    """(partition "dt=…/hour=…", JSON line) for each record, from the real Lambda handler."""
    from sales_ops.local.firehose import load_handler

    module = handler_module or load_handler()
    event = {
        "invocationId": str(uuid.uuid4()),
        "records": [
            {
                "recordId": str(i),
                "approximateArrivalTimestamp": 0,
                "data": base64.b64encode(orjson.dumps(r)).decode(),
            }
            for i, r in enumerate(records)
        ],
    }
    for out in module.handler(event, None)["records"]:
        if out["result"] != "Ok":
            raise ValueError(f"the handler refused a synthetic record: {out}")
        keys = out["metadata"]["partitionKeys"]
        yield f"dt={keys['dt']}/hour={keys['hour']}", base64.b64decode(out["data"])


@dataclass
class WriteSummary:
    events: int = 0
    objects: int = 0
    bytes: int = 0
    keys: list[str] = field(default_factory=list)


class RawWriter:
    """Buffers lines per partition and delivers ≤ 1 MiB objects, as the Firehose stand-in does."""

    def __init__(self, settings: Settings, object_bytes: int = OBJECT_BYTES, threads: int = 8) -> None:
        self.settings = settings
        self.s3 = settings.client("s3", max_pool_connections=threads * 2)
        self.object_bytes = object_bytes
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.pending: list = []
        self.buffers: dict[str, list[bytes]] = {}
        self.sizes: dict[str, int] = {}
        self.newest = ""
        self.summary = WriteSummary()

    def add(self, partition: str, line: bytes) -> None:
        self.buffers.setdefault(partition, []).append(line)
        self.sizes[partition] = self.sizes.get(partition, 0) + len(line)
        self.summary.events += 1
        if self.sizes[partition] >= self.object_bytes:
            self._flush(partition)

    def flush_before_older(self, partition: str) -> None:
        """Deliver the buffers of partitions older than this one (their hour is over)."""
        if partition != self.newest:
            self.newest = max(self.newest, partition)
            for part in [p for p in self.buffers if p < self.newest]:
                self._flush(part)

    def close(self) -> WriteSummary:
        for part in list(self.buffers):
            self._flush(part)
        for future in self.pending:
            future.result()
        self.pool.shutdown()
        return self.summary

    def _flush(self, partition: str) -> None:
        body = b"".join(self.buffers.pop(partition))
        self.sizes.pop(partition)
        last = json.loads(body[body.rfind(b"\n", 0, len(body) - 1) + 1 :])["event_time"]
        delivered = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(seconds=1)
        compression = self.settings.raw_compression
        name = object_name("orders-raw", 1, delivered, str(uuid.uuid4()), compression)
        key = f"{RAW_PREFIX}{partition}/{name}"
        body = encode_body(body, compression)
        self.summary.objects += 1
        self.summary.bytes += len(body)
        self.summary.keys.append(key)
        self.pending.append(
            self.pool.submit(self.s3.put_object, Bucket=self.settings.bucket, Key=key, Body=body)
        )
        if len(self.pending) > 64:
            for future in self.pending:
                future.result()
            self.pending = []


def raw_lines(
    changes: list[TimedChange], stream: ChangeStream, batch: int = 2000
) -> Iterator[tuple[str, bytes]]:
    """(partition, JSON line) of every change, as the real handler writes them, in time order."""
    from sales_ops.local.firehose import load_handler

    module = load_handler()
    records = stream.records(changes)
    while chunk := [r for _, r in zip(range(batch), records, strict=False)]:
        yield from transform(chunk, module)


def write_lines(settings: Settings, lines: Iterable[tuple[str, bytes]]) -> WriteSummary:
    """Deliver (partition, line) pairs to raw/ as Firehose would: ≤ 1 MiB objects per partition."""
    writer = RawWriter(settings)
    for partition, line in lines:
        writer.flush_before_older(partition)
        writer.add(partition, line)
    return writer.close()


def write_changes(
    settings: Settings, changes: list[TimedChange], stream: ChangeStream | None = None
) -> WriteSummary:
    """Run the changes through the handler and deliver them to raw/ as Firehose would."""
    return write_lines(settings, raw_lines(changes, stream or ChangeStream(settings.region)))


def split_at(changes: list[TimedChange], share_new: float) -> tuple[list[TimedChange], list[TimedChange]]:
    """(older, newest share) of time-ordered changes, e.g. 0.01 for the last 1 %."""
    cut = len(changes) - max(1, round(len(changes) * share_new))
    return changes[:cut], changes[cut:]
