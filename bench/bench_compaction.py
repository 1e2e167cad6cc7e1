"""Compaction benchmarks: incremental vs full at 1 % new changes, and 1M change events.

The data is synthetic raw history in the pipeline's exact format (sales_ops.load.synthetic: the mock
shop's order lifecycles as DynamoDB stream records, through the real Lambda handler, delivered as
Firehose names and partitions them), written straight to S3: pushing 200k orders through the
emulator's DynamoDB would take far too long. Everything else is the real thing: the local crawler,
the DuckDB engine over the emulator's S3 with Glue as catalog, the compaction SQL.

1. Incremental at 1 %: ≥ 200k orders over 45 days; the oldest 99 % of their changes are compacted,
   then the newest 1 % arrive (new orders and status changes of recent ones) and are compacted
   incrementally; a full rebuild of the same data follows, and the tables are compared.
2. 1M change events: a full compaction of ≥ 1,000,000 events, in a child process whose peak RSS is
   the memory figure.

    .venv/bin/python bench/bench_compaction.py [--orders 200000] [--events 1000000] [--skip-1m]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sales_ops.catalog.crawlers import LocalCrawler  # noqa: E402
from sales_ops.curated.compaction import compact  # noqa: E402
from sales_ops.load.synthetic import ChangeStream, plan_changes, split_at, write_changes  # noqa: E402
from sales_ops.query import DuckDBEngine  # noqa: E402
from sales_ops.settings import RAW_PREFIX, Settings  # noqa: E402
from tests.harness import free_port  # noqa: E402

CHANGES_PER_ORDER = 3.2  # what the mock shop's lifecycles average


@contextmanager
def emulator() -> Iterator[Settings]:
    """The project's emulator on a free port, without snapshots (the data is thrown away)."""
    state = Path(tempfile.mkdtemp(prefix="bench-compaction-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sales_ops.local.emulator",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--snapshot-every",
            "1000000",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    settings = Settings.from_env(
        "local", env={"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": str(state)}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                settings.client("s3").list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.3)
        yield settings
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no final snapshot of gigabytes we do not keep
        proc.wait()


def dataset(settings: Settings, name: str) -> Settings:
    """A fresh bucket and Glue database for one data set."""
    out = replace(settings, bucket=f"bench-{name}", database=f"bench_{name}")
    out.client("s3").create_bucket(Bucket=out.bucket)
    out.client("glue").create_database(DatabaseInput={"Name": out.database})
    return out


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def raw_bytes(settings: Settings) -> int:
    total = 0
    paginator = settings.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=settings.bucket, Prefix=RAW_PREFIX):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def timed(label: str, fn):
    started = time.monotonic()
    value = fn()
    print(f"  {label}: {time.monotonic() - started:.1f}s", flush=True)
    return value


def bench_incremental(root: Settings, orders: int, share: float) -> dict:
    print(f"\n== incremental compaction at {share:.0%} new changes, {orders:,} orders over 45 days ==")
    settings = dataset(root, "incremental")
    end = datetime.now(UTC) - timedelta(hours=1)
    changes = timed("plan", lambda: plan_changes(orders, end - timedelta(days=45), end, seed=42))
    older, newer = split_at(changes, share)
    stream = ChangeStream(seed=42)
    base = timed(
        f"write {len(older):,} events (synthetic, real handler)",
        lambda: write_changes(settings, older, stream),
    )
    timed("crawl", lambda: LocalCrawler(settings).run())
    engine = DuckDBEngine(settings)
    first = timed("first compaction (everything is new)", lambda: compact(settings, engine))
    delta = timed(f"write the newest {len(newer):,} events", lambda: write_changes(settings, newer, stream))
    timed("crawl", lambda: LocalCrawler(settings).run())
    incremental = timed("incremental compaction", lambda: compact(settings, engine))
    table = "SELECT * FROM orders_latest ORDER BY order_id"
    after_incremental = engine.query(table).rows
    full = timed("full rebuild of the same data", lambda: compact(settings, engine, full=True))
    same = engine.query(table).rows == after_incremental
    total_raw = raw_bytes(settings)
    # The same rebuild under a per-query scan cutoff an eighth of raw/ (issue 16, defect 8): in passes.
    capped = replace(settings, scan_cutoff_bytes=max(total_raw // 8, 1))
    with DuckDBEngine(capped) as capped_engine:
        passes = timed(
            "full rebuild in passes, cutoff = raw/8", lambda: compact(capped, capped_engine, full=True)
        )
        same_in_passes = capped_engine.query(table).rows == after_incremental
    figures = {
        "orders": orders,
        "events": len(changes),
        "new_events": len(newer),
        "raw_objects": base.objects + delta.objects,
        "raw_bytes": total_raw,
        "new_raw_bytes": delta.bytes,
        "live_orders": len(after_incremental),
        "first_compaction": asdict(first) | {"partitions_rewritten": len(first.partitions_rewritten)},
        "incremental": asdict(incremental) | {"partitions_rewritten": len(incremental.partitions_rewritten)},
        "full": asdict(full) | {"partitions_rewritten": len(full.partitions_rewritten)},
        "incremental_equals_full": same,
        "full_in_passes": asdict(passes) | {"partitions_rewritten": len(passes.partitions_rewritten)},
        "passes_equal_incremental": same_in_passes,
    }
    ratio = incremental.bytes_read / full.bytes_read
    print(
        f"  raw data: {figures['raw_objects']:,} objects, {mib(total_raw)}; the new 1 %: {mib(delta.bytes)}"
    )
    print(
        f"  incremental: read {mib(incremental.bytes_read)}, wrote {mib(incremental.bytes_written)}, "
        f"{len(incremental.partitions_rewritten)} of {len(full.partitions_rewritten)} partitions, "
        f"{incremental.seconds:.1f}s"
    )
    print(
        f"  full:        read {mib(full.bytes_read)}, wrote {mib(full.bytes_written)}, "
        f"{len(full.partitions_rewritten)} partitions, {full.seconds:.1f}s"
    )
    print(
        f"  bytes read, incremental / full: {ratio:.2%} (target ≤ 5 %); "
        f"incremental / raw data: {incremental.bytes_read / total_raw:.2%}; tables equal: {same}"
    )
    print(
        f"  full in passes (cutoff {mib(capped.scan_cutoff_bytes)}): {passes.passes} passes, read "
        f"{mib(passes.bytes_read)} ({passes.bytes_read / full.bytes_read:.2f}x one pass), "
        f"{passes.seconds:.1f}s ({passes.seconds / full.seconds:.2f}x); tables equal: {same_in_passes}"
    )
    engine.close()
    return figures


def bench_million(root: Settings, events: int) -> dict:
    print(f"\n== full compaction of ≥ {events:,} change events ==")
    settings = dataset(root, "million")
    orders = int(events / CHANGES_PER_ORDER * 1.05)
    end = datetime.now(UTC) - timedelta(hours=1)
    changes = timed("plan", lambda: plan_changes(orders, end - timedelta(days=90), end, seed=7))
    while len(changes) < events:  # top up: lifecycles vary
        orders = int(orders * 1.05)
        changes = plan_changes(orders, end - timedelta(days=90), end, seed=7)
    written = timed(f"write {len(changes):,} events", lambda: write_changes(settings, changes))
    changes.clear()
    timed("crawl", lambda: LocalCrawler(settings).run())
    child = [sys.executable, __file__, "--child-compact", settings.endpoint_url or "", settings.bucket]
    child += [settings.database, str(settings.state_dir)]
    started = time.monotonic()
    out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(out)
    print(f"  raw data: {written.objects:,} objects, {mib(written.bytes)}, {written.events:,} events")
    print(
        f"  full compaction: {report['seconds']:.1f}s ({wall:.1f}s with process start), read "
        f"{mib(report['bytes_read'])}, wrote {mib(report['bytes_written'])}, {report['rows']:,} live orders "
        f"in {len(report['partitions_rewritten'])} partitions"
    )
    print(f"  peak memory (RSS of the compacting process, DuckDB included): {peak_kib / 1024:,.0f} MiB")
    return {"events": written.events, "raw_bytes": written.bytes, "report": report, "peak_rss_kib": peak_kib}


def child_compact(endpoint: str, bucket: str, database: str, state_dir: str) -> None:
    settings = Settings.from_env(
        "local", env={"SALES_OPS_ENDPOINT": endpoint, "SALES_OPS_STATE_DIR": state_dir}
    )
    settings = replace(settings, bucket=bucket, database=database)
    with DuckDBEngine(settings) as engine:
        report = compact(settings, engine, full=True)
    print(json.dumps(asdict(report) | {"partitions_rewritten": report.partitions_rewritten}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--share", type=float, default=0.01, help="share of newest changes compacted last")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-1m", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child-compact", nargs=4, metavar=("ENDPOINT", "BUCKET", "DATABASE", "STATE"))
    args = parser.parse_args()
    if args.child_compact:
        child_compact(*args.child_compact)
        return
    print(f"bench_compaction on {os.cpu_count()} CPUs; data: synthetic raw events in the handler's format")
    with emulator() as root:
        figures = {"incremental": bench_incremental(root, args.orders, args.share)}
        if not args.skip_1m:
            figures["million"] = bench_million(root, args.events)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
