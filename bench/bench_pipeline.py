"""Benchmark the local streaming path: freshness and sustained throughput.

1. Freshness: write changes at --rate changes/s; for every change, the time from its DynamoDB
   write (the item's updated_at, stamped just before the write) to the moment its line is visible
   in S3 (S3 is polled every 100 ms, so figures are late by at most that). p50/p95/p99.
2. Sustained throughput: with the stand-ins stopped, write --backlog-orders orders, then start
   them and time how long the stream→Kinesis→Lambda→S3 path takes to drain the backlog.
   (Separated from writing because the emulator's DynamoDB writes are the slower part here.)

Runs on a private stack (free port, temp state dir). Usage: python bench/bench_pipeline.py --help
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sales_ops.load.shop import run_load
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.raw_objects import decode_body
from sales_ops.settings import RAW_PREFIX, Settings
from tests.harness import free_port


def private_stack(state_dir: Path) -> Settings:
    env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "SALES_OPS_STATE_DIR": str(state_dir)}
    return Settings.from_env("local", env=env)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class S3Watcher(threading.Thread):
    """Polls the raw prefix and stamps each change with when its line became visible."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.seen, self.latencies = settings, set(), []
        self.stop = threading.Event()

    def run(self) -> None:
        s3 = self.settings.client("s3")
        while not self.stop.is_set():
            now = time.time()
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.bucket, Prefix=RAW_PREFIX
            ):
                for obj in page.get("Contents", []):
                    if obj["Key"] not in self.seen:
                        self.seen.add(obj["Key"])
                        self._record(s3, obj["Key"], now)
            self.stop.wait(0.1)

    def _record(self, s3, key: str, visible_at: float) -> None:
        body = decode_body(s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read())
        for line in body.splitlines():
            written = json.loads(line).get("updated_at")
            if written:
                written_at = datetime.fromisoformat(written.replace("Z", "+00:00")).timestamp()
                self.latencies.append(visible_at - written_at)


def bench_freshness(settings: Settings, orders: int, rate: float) -> dict:
    watcher = S3Watcher(settings)
    watcher.start()
    summary = run_load(settings, orders, rate=rate, seed=101)
    wait_delivered(settings, timeout=600)
    time.sleep(0.3)
    watcher.stop.set()
    watcher.join()
    lat = watcher.latencies
    return {
        "changes": summary.changes,
        "requested_rate": rate,
        "achieved_write_rate": round(summary.rate),
        "p50_s": round(percentile(lat, 50), 2),
        "p95_s": round(percentile(lat, 95), 2),
        "p99_s": round(percentile(lat, 99), 2),
        "max_s": round(max(lat), 2),
        "mean_s": round(statistics.fmean(lat), 2),
        "measured": len(lat),
    }


def bench_drain(settings: Settings, orders: int) -> dict:
    supervisor.stop_service(supervisor.WORKERS, settings, timeout=30)
    write = run_load(settings, orders, rate=0, seed=202)
    started = time.monotonic()
    supervisor.up(settings, log=lambda *_: None)
    wait_delivered(settings, timeout=1200, poll=0.2)
    seconds = time.monotonic() - started
    return {
        "changes": write.changes,
        "write_rate": round(write.rate),
        "drain_s": round(seconds, 1),
        "drain_rate": round(write.changes / seconds),
        "end_to_end_rate": round(write.changes / (write.seconds + seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1500, help="orders for the freshness run")
    parser.add_argument("--rate", type=float, default=1000, help="changes/s for the freshness run")
    parser.add_argument("--backlog-orders", type=int, default=6000, help="orders for the throughput run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        settings = private_stack(Path(tmp))
        supervisor.up(settings, log=lambda *_: None)
        try:
            fresh = bench_freshness(settings, args.orders, args.rate)
            print(
                f"freshness  {fresh['changes']} changes, requested {fresh['requested_rate']:.0f}/s, "
                f"written at {fresh['achieved_write_rate']}/s: p50 {fresh['p50_s']}s  p95 {fresh['p95_s']}s  "
                f"p99 {fresh['p99_s']}s  max {fresh['max_s']}s  (target p95 <= 3 s)"
            )
            drain = bench_drain(settings, args.backlog_orders)
            print(
                f"throughput {drain['changes']} changes: stream→S3 drained at {drain['drain_rate']}/s "
                f"({drain['drain_s']}s); DynamoDB writes at {drain['write_rate']}/s; "
                f"whole path write+drain {drain['end_to_end_rate']}/s  (target >= 2000/s)"
            )
            print(json.dumps({"freshness": fresh, "throughput": drain}))
        finally:
            supervisor.down(settings, log=lambda *_: None)


if __name__ == "__main__":
    main()
