"""`total_sales_by_product` from orders_latest (Parquet) against the same answer from raw JSON.

Both are named queries (sql/total_sales_by_product.sql and sql/total_sales_by_product_raw.sql, the
latter taking the latest event per order from raw_orders itself). The data is synthetic raw history
in the pipeline's exact format (see bench_compaction.py), crawled and compacted by the project's
own code; each query runs a few times on the local DuckDB engine over the emulator, and the bytes
(what httpfs fetched from S3) and the best time are printed side by side.

    .venv/bin/python bench/bench_query.py [--orders 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_compaction import dataset, emulator, mib, raw_bytes, timed

from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.compaction import compact
from sales_ops.load.synthetic import plan_changes, write_changes
from sales_ops.query import DuckDBEngine, QueryResult


def best_of(engine: DuckDBEngine, name: str, repeat: int) -> tuple[QueryResult, float]:
    runs = [engine.named(name) for _ in range(repeat)]
    return runs[0], min(r.seconds for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"bench_query on {os.cpu_count()} CPUs; data: synthetic raw events in the handler's format")
    with emulator() as root:
        settings = dataset(root, "query")
        end = datetime.now(UTC) - timedelta(hours=1)
        changes = timed(
            "plan", lambda: plan_changes(args.orders, end - timedelta(days=args.days), end, seed=3)
        )
        written = timed(f"write {len(changes):,} events", lambda: write_changes(settings, changes))
        timed("crawl", lambda: LocalCrawler(settings).run())
        engine = DuckDBEngine(settings)
        timed("compact", lambda: compact(settings, engine))
        latest, latest_s = best_of(engine, "total_sales_by_product", args.repeat)
        raw, raw_s = best_of(engine, "total_sales_by_product_raw", args.repeat)
        engine.close()
        total = raw_bytes(settings)
    print(f"\n{args.orders:,} orders, {written.events:,} change events, raw JSON {mib(total)}")
    print(f"{'source':34} {'bytes scanned':>16} {'best time':>10} {'rows':>6}")
    for label, result, seconds in (
        ("orders_latest (Parquet, latest)", latest, latest_s),
        ("raw_orders (JSON, every event)", raw, raw_s),
    ):
        print(f"{label:34} {mib(result.bytes_scanned):>16} {seconds:>9.2f}s {len(result.rows):>6}")
    print(
        f"orders_latest scans 1/{raw.bytes_scanned / max(latest.bytes_scanned, 1):,.0f} of the bytes "
        f"(target ≤ 1/10) and is {raw_s / latest_s:.1f}x faster; same answer: {latest.rows == raw.rows}"
    )


if __name__ == "__main__":
    main()
