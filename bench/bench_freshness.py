"""Freshness of the live state: DynamoDB write → `orders_live`, and write → the dashboard's total.

With nothing but the embedded AWS running (emulator + Pipe/Firehose stand-ins: no crawl, no
compaction, no Dagster), on a private stack:

1. a first load (--orders, delivered), then a gentle live load in the background (--rate changes/s,
   as `make run` keeps going);
2. --probes times: write one order straight to DynamoDB, then query
   `SELECT count(*) FROM orders_live WHERE order_id = …` back to back on the local engine until it
   is there; the latency is from just before the write to the answer that has it (so it includes
   one query's time);
3. with the live load stopped, start `sales-ops dashboard` and, --dashboard-probes times, write an
   order and poll /api/metrics until the total has grown by exactly its amount.

p50/p95 are printed. Usage: python bench/bench_freshness.py [--orders 300] [--rate 10] [--probes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import free_port, percentile, private_stack

from sales_ops.load.shop import run_live_load, run_load, write_probe
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.query import DuckDBEngine
from sales_ops.settings import PROJECT_ROOT, Settings
from tests.harness import stop_process


def figures(label: str, seconds: list[float]) -> dict:
    out = {
        "p50": round(percentile(seconds, 50), 2),
        "p95": round(percentile(seconds, 95), 2),
        "max": round(max(seconds), 2),
    }
    print(f"{label}: p50 {out['p50']:.2f}s, p95 {out['p95']:.2f}s, max {out['max']:.2f}s (n={len(seconds)})")
    return out


def to_orders_live(settings: Settings, probes: int) -> tuple[list[float], list[float]]:
    latencies, query_seconds = [], []
    with DuckDBEngine(settings) as engine:
        for _ in range(probes):
            order_id = f"ord-probe-{uuid.uuid4()}"
            sql = f"SELECT count(*) FROM {settings.database}.orders_live WHERE order_id = '{order_id}'"
            started = time.monotonic()
            write_probe(settings, order_id)
            while True:
                result = engine.query(sql)
                query_seconds.append(result.seconds)
                if result.rows == [(1,)]:
                    break
                if time.monotonic() - started > 120:
                    raise SystemExit(f"{order_id} not in orders_live after 120 s")
            latencies.append(time.monotonic() - started)
            time.sleep(0.5)  # probes spread over time, not back to back
    return latencies, query_seconds


def dashboard_total(url: str) -> Decimal:
    with urllib.request.urlopen(url + "api/metrics", timeout=300) as response:
        panel = json.loads(response.read())["panels"]["total"]
    if panel["status"] != "ok":
        raise SystemExit(f"dashboard total: {panel}")
    return Decimal(panel["data"]["total_sales"])


def to_dashboard(settings: Settings, probes: int) -> list[float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, **settings.to_env()}
    cmd = [sys.executable, "-m", "sales_ops.cli", "dashboard", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                dashboard_total(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the dashboard did not start") from None
                time.sleep(0.5)
        latencies, refreshes = [], []
        for _ in range(probes):
            started = time.monotonic()
            before = dashboard_total(url)
            refreshes.append(time.monotonic() - started)
            started = time.monotonic()
            amount = write_probe(settings, f"ord-probe-{uuid.uuid4()}")
            while dashboard_total(url) != before + amount:
                if time.monotonic() - started > 120:
                    raise SystemExit("the probe never reached the dashboard")
                time.sleep(0.2)
            latencies.append(time.monotonic() - started)
        figures("  one /api/metrics answer (a refresh of every panel, or the cache)", refreshes)
        return latencies
    finally:
        stop_process(proc, 30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300, help="first load, delivered before measuring")
    parser.add_argument("--rate", type=float, default=10.0, help="background live load, changes/s")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--dashboard-probes", type=int, default=5)
    args = parser.parse_args()
    print(f"bench_freshness on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    settings = private_stack(Path(tempfile.mkdtemp(prefix="bench-freshness-")))
    supervisor.up(settings, log=lambda *_: None)
    stop = threading.Event()
    try:
        run_load(settings, args.orders, rate=0, seed=14)
        wait_delivered(settings, timeout=300)
        live = threading.Thread(target=run_live_load, args=(settings, args.rate), kwargs={"stop": stop})
        live.start()
        print(f"first load {args.orders} orders delivered; live load at {args.rate:g} changes/s running")
        latencies, query_seconds = to_orders_live(settings, args.probes)
        figures("DynamoDB write → orders_live (local engine)", latencies)
        figures("  one orders_live query", query_seconds)
        stop.set()
        live.join()
        wait_delivered(settings, timeout=120)
        figures(
            "DynamoDB write → dashboard total (/api/metrics)", to_dashboard(settings, args.dashboard_probes)
        )
    finally:
        stop.set()
        supervisor.down(settings, log=lambda *_: None)


if __name__ == "__main__":
    main()
