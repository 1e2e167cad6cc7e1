"""Bytes read per cycle by the curated layer, against the size of the history (issue 20).

Two histories of the mock shop at the same rate (synthetic raw history: the real handler's output
delivered as Firehose names it), one 5x as long as the other; then the same kind of change set
arrives in six hourly cycles (the last six hours of the lifecycles: new orders and status
changes of recent ones). Each cycle runs what the automation runs: compaction, the three
rollups, the per-cycle checks (unique_order_id, amounts). Printed: each stage's statements and
bytes scanned per cycle (the engine's own bytes_scanned), mean and largest, per history.

It uses only APIs that exist before and after the merge-on-read layer, so the same file measures
an export of an older commit too:

    .venv/bin/python bench/bench_curated.py [--per-day 200] [--days 30 150]
    git archive <commit> | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python bench/bench_curated.py
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0] or str(ROOT))
sys.path.insert(1, str(ROOT))

from bench.bench_compaction import dataset, emulator  # noqa: E402
from sales_ops.catalog.crawlers import LocalCrawler  # noqa: E402
from sales_ops.curated.compaction import compact  # noqa: E402
from sales_ops.curated.rollups import build_rollups  # noqa: E402
from sales_ops.load.shop import write_catalogue  # noqa: E402
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines  # noqa: E402
from sales_ops.quality.checks import check_amounts, check_unique_order_id  # noqa: E402
from sales_ops.query import DuckDBEngine  # noqa: E402
from sales_ops.settings import Settings  # noqa: E402

CYCLES = 6


@dataclass
class Counting:
    """The engine, counting each statement's bytes scanned (for the checks, which report none)."""

    engine: Any
    settings: Settings
    name: str = "duckdb"
    log: list[int] = field(default_factory=list)

    def _count(self, result: Any) -> Any:
        self.log.append(result.bytes_scanned)
        return result

    def query(self, sql: str) -> Any:
        return self._count(self.engine.query(sql))

    def execute(self, sql: str) -> Any:
        return self._count(self.engine.execute(sql))

    def named(self, name: str, **params: Any) -> Any:
        return self._count(self.engine.named(name, **params))

    def close(self) -> None:
        self.engine.close()


def run(root: Settings, days: int, per_day: int) -> dict[str, list[tuple[int, int]]]:
    settings = dataset(root, f"h{days}")
    write_catalogue(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    changes = plan_changes(per_day * days, end - timedelta(days=days), end, seed=7)
    cut = (end - timedelta(hours=CYCLES)).timestamp()
    stream = ChangeStream(seed=7)
    history = [c for c in changes if c.at < cut]
    write_lines(settings, raw_lines(history, stream))
    LocalCrawler(settings).run()
    stages: dict[str, list[tuple[int, int]]] = {"compaction": [], "rollups": [], "checks": []}
    with DuckDBEngine(settings) as engine:
        compact(settings, engine)
        build_rollups(settings, engine)
        for hour in range(CYCLES):
            lo, hi = cut + hour * 3600, cut + (hour + 1) * 3600
            write_lines(settings, raw_lines([c for c in changes if lo <= c.at < hi], stream))
            counting = Counting(engine, settings)
            report = compact(settings, counting)  # type: ignore[arg-type]
            stages["compaction"].append((len(counting.log), report.bytes_read))
            counting = Counting(engine, settings)
            rollups = build_rollups(settings, counting)  # type: ignore[arg-type]
            stages["rollups"].append((len(counting.log), sum(r.bytes_read for r in rollups)))
            counting = Counting(engine, settings)
            check_unique_order_id(counting)  # type: ignore[arg-type]
            check_amounts(counting)  # type: ignore[arg-type]
            stages["checks"].append((len(counting.log), sum(counting.log)))
    print(f"  history {days} days, {per_day * days:,} orders, {len(history):,} events", flush=True)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=int, default=200)
    parser.add_argument("--days", type=int, nargs=2, default=[30, 150])
    args = parser.parse_args()
    import sales_ops

    print(f"sales_ops from {Path(sales_ops.__file__).parent}")
    with emulator() as root:
        results = {days: run(root, days, args.per_day) for days in args.days}
    short, long_ = args.days
    print(
        f"\n| stage | statements/cycle | bytes/cycle, {short} d (mean, max) | {long_} d (mean, max) | ratio |"
    )
    print("|---|---|---|---|---|")
    for stage in ("compaction", "rollups", "checks"):
        a, b = results[short][stage], results[long_][stage]
        mean_a, mean_b = sum(x for _, x in a) / len(a), sum(x for _, x in b) / len(b)
        statements = sum(n for n, _ in b) / len(b)
        top_a, top_b = max(x for _, x in a) / 1024, max(x for _, x in b) / 1024
        print(
            f"| {stage} | {statements:.1f} | {mean_a / 1024:,.0f} KiB, {top_a:,.0f} KiB "
            f"| {mean_b / 1024:,.0f} KiB, {top_b:,.0f} KiB | {mean_b / max(mean_a, 1):.2f} |"
        )


if __name__ == "__main__":
    main()
