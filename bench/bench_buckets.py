"""A date bigger than the per-query cutoff, folded a bucket at a time (issue 20, 1,000 changes/s).

At 1,000 changes/s one date of orders_base holds ~28 M orders, about Athena's 1 GiB cutoff by
itself. Scaled down here: the cutoff is `--cutoff` bytes (256 KB) and one day's orders arrive in
`--rounds` deliveries, each compacted under that cutoff (a cycle's deltas, folded as the code
folds them). After each round the benchmark prints the busiest date's live Parquet against the
cutoff, its buckets, the fold statements of the round and the most any one statement read: the
date grows past the cutoff while no statement does. The baseline, side by side, is what a fold
with a date as its smallest unit would read in its merge: the whole date and the deltas in one
statement (it passes the cutoff once the date does; the engine would cancel it, as Athena does).
Then the rest of the cycle under the same cutoff: every rollup and one dashboard refresh (a date
too big is read a slice of the orders at a time, added up), against the dashboard's live panels in
one statement.

    .venv/bin/python bench/bench_buckets.py [--orders 12000] [--rounds 6] [--cutoff 262144]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_compaction import dataset, emulator  # noqa: E402

from sales_ops.catalog.crawlers import LocalCrawler  # noqa: E402
from sales_ops.curated.compaction import compact  # noqa: E402
from sales_ops.curated.rollups import build_rollups  # noqa: E402
from sales_ops.curated.state import CompactionState  # noqa: E402
from sales_ops.curated.tables import current_versions, version_layout  # noqa: E402
from sales_ops.dashboard.snapshot import live_query, read_live  # noqa: E402
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines  # noqa: E402
from sales_ops.query import DuckDBEngine  # noqa: E402
from sales_ops.query.meter import Meter  # noqa: E402

FOLD_STATEMENTS = ("compact_orphans", "compact_touched", "compact_orders", "compact_rows")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=12000, help="orders created over one day")
    parser.add_argument("--rounds", type=int, default=6, help="deliveries, each compacted")
    parser.add_argument("--cutoff", type=int, default=256 * 1024, help="per-statement scan cutoff, bytes")
    args = parser.parse_args()
    if args.orders < 100 or args.rounds < 1 or args.cutoff < 16 * 1024:
        parser.error("--orders ≥ 100, --rounds ≥ 1 and --cutoff ≥ 16384, please")
    end = datetime.now(UTC).replace(hour=23, minute=0, second=0, microsecond=0) - timedelta(days=1)
    changes = plan_changes(args.orders, end - timedelta(hours=22), end, seed=5)
    cut = [round(len(changes) * (i + 1) / args.rounds) for i in range(args.rounds)]
    stream = ChangeStream(seed=5)
    with emulator() as stack:
        settings = dataset(stack, "buckets")
        capped = replace(settings, scan_cutoff_bytes=args.cutoff)
        meter = Meter()
        what = f"{len(changes):,} changes of {args.orders:,} orders, {args.rounds} rounds"
        print(f"{what}, cutoff {args.cutoff:,} B")
        print(
            "| round | busiest date, live Parquet | x cutoff | buckets | fold statements | most one "
            "statement read | x cutoff | a date-sized merge would read | x cutoff | seconds | rollups and "
            "dashboard: statements | most one read, x cutoff | dashboard slices | dashboard in one "
            "statement, x cutoff |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        with DuckDBEngine(capped) as small, DuckDBEngine(settings) as whole:
            engine = meter.engine(small)
            start = 0
            for number, stop in enumerate(cut, 1):
                write_lines(settings, list(raw_lines(changes[start:stop], stream)))
                LocalCrawler(settings).run()
                start = stop
                began = time.monotonic()
                with meter.stage(f"round {number}"):
                    compact(capped, engine)
                seconds = time.monotonic() - began
                used = meter.by_stage()[f"round {number}"].statements
                folds = [s for s in used if s.label in FOLD_STATEMENTS]
                current = current_versions(settings)
                layout = version_layout(settings)
                busiest = max(current, key=lambda d: sum(layout[(d.isoformat(), current[d])].values()))
                live = whole.query(
                    f"SELECT * FROM {settings.database}.orders_base WHERE order_date = DATE '{busiest}'"
                )
                deltas = sum(CompactionState.load(settings).delta_bytes.values())
                merge = live.bytes_scanned + deltas  # a date-sized fold: the date and the deltas at once
                most = max((s.bytes_scanned for s in used), default=0)
                buckets = len(layout[(busiest.isoformat(), current[busiest])])
                size = live.bytes_scanned
                with meter.stage(f"rest {number}"):
                    build_rollups(capped, engine)
                    slices = read_live(capped, engine).slices
                rest = meter.by_stage()[f"rest {number}"].statements
                rest_most = max(s.bytes_scanned for s in rest) / args.cutoff
                one = whole.execute(live_query(settings, whole).sql).bytes_scanned / args.cutoff
                print(
                    f"| {number} | {size:,} | {size / args.cutoff:.2f} | {buckets} | {len(folds)} "
                    f"| {most:,} | {most / args.cutoff:.2f} | {merge:,} | {merge / args.cutoff:.2f} "
                    f"| {seconds:.1f} | {len(rest)} | {rest_most:.2f} | {slices} | {one:.2f} |"
                )


if __name__ == "__main__":
    main()
