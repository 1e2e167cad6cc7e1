"""Throughput of the Firehose processor against the seed pipeline's transform.

The baseline is what the original console-built Lambda did for each record: base64-decode,
json.loads, boto3's TypeDeserializer on NewImage (a REMOVE has none: it fails, and is counted),
json.dumps(default=str), base64-encode. Ours runs twice: with orjson and with the standard
library alone (the module loaded a second time with orjson blocked). All three get the same
Firehose events built from realistic stream records (60% INSERT, 35% MODIFY, 5% REMOVE) in
batches the size Firehose sends, in the same process; the best of a few repeats of the CPU time
is reported (the median too).

    .venv/bin/python bench/bench_transform.py [--records N] [--repeat R] [--batch B]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boto3.dynamodb.types import TypeDeserializer

from tests.harness import load_handler

CATEGORIES = ["electronics", "grocery", "sports", "home", "beauty", "toys", "books", "garden"]
ADJECTIVES = ["Wireless", "Organic", "Compact", "Deluxe", "Portable", "Classic", "Smart", "Eco"]
NOUNS = ["Mouse", "Keyboard", "Coffee Beans", "Running Shoes", "Desk Lamp", "Yoga Mat", "Serum", "Pan"]
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-22T00:00:00.000"
STATUSES = ["PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"]
CHANNELS = ["web", "mobile", "store", "partner"]
REGIONS = ["us-east", "us-west", "eu-central", "ap-south"]


def make_catalog(rng: random.Random, size: int = 300) -> list[tuple[str, str, str, str]]:
    """(product_id, product_name, category, unit_price) with prices to the cent."""
    return [
        (
            f"sku-{i:04d}",
            f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
            rng.choice(CATEGORIES),
            f"{rng.randint(199, 49999) / 100:.2f}",
        )
        for i in range(size)
    ]


def _image(
    rng: random.Random, catalog: list[tuple[str, str, str, str]], order_id: str, status: str, ts: str
) -> dict[str, Any]:
    sku, name, category, price = rng.choice(catalog)
    qty = rng.randint(1, 5)
    total = f"{qty * int(price.replace('.', '')) / 100:.2f}"
    image = {
        "order_id": {"S": order_id},
        "customer_id": {"S": f"cus-{rng.randint(1, 5000):05d}"},
        "product_id": {"S": sku},
        "product_name": {"S": name},
        "category": {"S": category},
        "quantity": {"N": str(qty)},
        "unit_price": {"N": price},
        "order_total": {"N": total},
        "status": {"S": status},
        "channel": {"S": rng.choice(CHANNELS)},
        "region": {"S": rng.choice(REGIONS)},
        "created_at": {"S": ts},
        "updated_at": {"S": ts},
    }
    if rng.random() < 0.2:  # some items carry attributes outside docs/design.md §2.1
        image["coupon"] = {"M": {"code": {"S": "WELCOME10"}, "pct": {"N": "10"}}}
    return image


def make_stream_records(n: int, seed: int = 7) -> list[bytes]:
    """n DynamoDB stream records in the Pipe's Lambda-event shape, JSON-encoded."""
    rng = random.Random(seed)
    catalog = make_catalog(rng)
    base = 1795356191
    out = []
    for i in range(n):
        roll = rng.random()
        name = "INSERT" if roll < 0.60 else "MODIFY" if roll < 0.95 else "REMOVE"
        order_id = f"ord-{rng.randint(1, n // 3 + 1):07d}"
        ts = f"2026-11-22T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z"
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": base + i // 50,
            "Keys": {"order_id": {"S": order_id}},
            "SequenceNumber": str(100000000000000000000 + i * 1000),
            "SizeBytes": 320,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if name != "REMOVE":
            ddb["NewImage"] = _image(rng, catalog, order_id, rng.choice(STATUSES), ts)
        if name != "INSERT":
            ddb["OldImage"] = _image(rng, catalog, order_id, "PLACED", ts)
        record = {
            "eventID": f"{i:032x}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
            "eventSourceARN": STREAM_ARN,
        }
        out.append(json.dumps(record).encode())
    return out


def make_events(stream_records: list[bytes], batch: int) -> list[dict[str, Any]]:
    records = [
        {
            "recordId": f"{i:056d}",
            "approximateArrivalTimestamp": 1795356191000 + i,
            "data": base64.b64encode(raw).decode(),
        }
        for i, raw in enumerate(stream_records)
    ]
    return [
        {
            "invocationId": f"bench-{start}",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders-raw",
            "region": "us-east-1",
            "records": records[start : start + batch],
        }
        for start in range(0, len(records), batch)
    ]


def make_baseline() -> tuple[Callable[[dict[str, Any], Any], dict[str, Any]], dict[str, int]]:
    """The seed pipeline's transform, as built in the console, and its failure counter."""
    deserializer = TypeDeserializer()
    counts = {"failed": 0}

    def baseline_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        output = []
        for record in event["records"]:
            payload = json.loads(base64.b64decode(record["data"]))
            try:
                image = payload["dynamodb"]["NewImage"]
                item = {k: deserializer.deserialize(v) for k, v in image.items()}
            except KeyError:
                counts["failed"] += 1
                output.append(
                    {"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]}
                )
                continue
            line = json.dumps(item, default=str) + "\n"
            output.append(
                {
                    "recordId": record["recordId"],
                    "result": "Ok",
                    "data": base64.b64encode(line.encode()).decode(),
                }
            )
        return {"records": output}

    return baseline_handler, counts


def run(fn: Callable[[dict[str, Any], Any], dict[str, Any]], events: list[dict[str, Any]]) -> float:
    """CPU seconds of this process: single-threaded work, so other load on the host counts less."""
    start = time.process_time()
    for event in events:
        fn(event, None)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=50_000, help="stream records to transform (50000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per variant; best is kept (5)")
    parser.add_argument("--batch", type=int, default=500, help="records per Firehose invocation (500)")
    args = parser.parse_args(argv)

    events = make_events(make_stream_records(args.records), args.batch)
    baseline, baseline_counts = make_baseline()
    ours_std, ours_orjson = load_handler(block_orjson=True), load_handler()
    if ours_orjson.orjson is None or ours_std.orjson is not None:
        raise SystemExit("could not load both variants of the handler (is orjson installed?)")
    # Same bytes either way, and every record Ok, checked before timing anything.
    results = [ours_orjson.handler(event, None)["records"] for event in events]
    if [ours_std.handler(event, None)["records"] for event in events] != results:
        raise SystemExit("stdlib and orjson outputs differ")
    if any(out["result"] != "Ok" for outs in results for out in outs):
        raise SystemExit("our handler failed records that are valid")
    ours_std.logger.disabled = ours_orjson.logger.disabled = True

    variants = {
        "baseline (seed)": baseline,
        "ours, stdlib": ours_std.handler,
        "ours, orjson": ours_orjson.handler,
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits all variants alike
        for name, fn in variants.items():
            timings[name].append(run(fn, events))
    removes = baseline_counts["failed"] // args.repeat

    n = args.records
    base_rate = n / min(timings["baseline (seed)"])
    print(f"{n} records in batches of {args.batch}, CPU time, best of {args.repeat} (median in brackets)")
    print(f"baseline ProcessingFailed per run (REMOVE has no NewImage): {removes}")
    print(f"{'variant':<18}{'records/s':>12}{'(median)':>12}{'vs baseline':>13}")
    for name, times in timings.items():
        rate = n / min(times)
        print(f"{name:<18}{rate:>12,.0f}{n / statistics.median(times):>12,.0f}{rate / base_rate:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
