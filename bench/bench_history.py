"""Bytes and statements per stage of one cycle as the history grows, and compaction per partition size.

1. History: one cycle (compaction with a fold, rollups, checks, sampled reconciliation, one dashboard refresh;
   `sales_ops.query.meter.run_cycle`, the stages' public entry points only) on top of histories of
   `--days` (3, 10 and 30 by default: 10x between the first two, 10x again to stand for "a year
   later") of a shop at 10 changes/s scaled down by `--scale` (the order rate: 0.002 makes 10
   changes/s 0.02). Scaled because what a local build costs is the number of raw objects (one per
   hour of history at least) and DuckDB reading them through the emulator: a year of hourly
   partitions does not fit in the 10 minutes this bench may take on 2 cores. Each history is built
   in its own bucket with the synthetic writer (sales_ops.load.synthetic: the mock shop's
   lifecycles through the real Lambda handler, delivered straight to S3 as Firehose does),
   crawled, compacted and rolled up; then the same change set (the newest `--changes` changes of
   the newest days, identical in every history; 600 = a minute at 10 changes/s, not scaled)
   arrives and the metered cycle runs. The newest `RECENT_DAYS` are one plan shared by every
   history; older days are planned separately.
2. Partition size: compaction of the same change set (new orders of the day's last hour, as a
   cycle's new objects all land in the current hour; the day's other orders in the hours before,
   so that only the Parquet partition differs, not the raw hour the cycle reads) into a day
   partition of 1M and of 10M orders
   (a day at 1,000 changes/s holds about 27M), both scaled by `--partition-scale`; the change set
   is a minute at 1,000 changes/s scaled the same way. `--only-partitions --write` redoes this part
   alone and keeps part 1's figures.

The scale factors are printed first; each figure is what one cycle did, not an extrapolation.

Bytes are the engine's own `bytes_scanned` (DuckDB over the emulator's S3: the bytes it fetched).
`--write` stores the figures in scripts/cycle_bytes.json, from which scripts/cost_table.py models
how each statement's bytes grow with the history. The printed tables are what to compare before
and after a redesign of the stages.

    .venv/bin/python bench/bench_history.py [--days 3,10,30] [--scale 0.002] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_compaction import dataset, emulator, mib  # noqa: E402
from sales_ops.catalog.crawlers import LocalCrawler  # noqa: E402
from sales_ops.curated.compaction import compact  # noqa: E402
from sales_ops.curated.rollups import build_rollups  # noqa: E402
from sales_ops.load.synthetic import ChangeStream, TimedChange, plan_changes, write_changes  # noqa: E402
from sales_ops.query import DuckDBEngine  # noqa: E402
from sales_ops.query.meter import CYCLE_STAGES, HOURLY_STAGES, Meter, run_cycle  # noqa: E402
from sales_ops.settings import Settings  # noqa: E402
from tests.harness import drop_bucket  # noqa: E402

OUT = ROOT / "scripts" / "cycle_bytes.json"
RATE = 10.0  # changes/s of the history (before scaling)
PARTITION_RATE = 1000.0
CHANGES_PER_ORDER = 3.2  # what the mock shop's lifecycles average (bench_compaction)
RECENT_DAYS = 3  # the newest days, the same plan in every history
DAY_S = 86400


def orders_for(rate: float, seconds: float) -> int:
    return max(1, round(rate * seconds / CHANGES_PER_ORDER))


def create_orders_table(settings: Settings) -> None:
    """The sampled reconciliation reads a page of the orders table (empty here: only bytes count)."""
    settings.client("dynamodb").create_table(
        TableName=settings.table,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def prefix_bytes(settings: Settings, prefix: str) -> int:
    pages = (
        settings.client("s3").get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
    )
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def statements(meter: Meter) -> dict[str, list[list[Any]]]:
    """Stage → [[label, bytes scanned], …] of the statements Athena would bill, in order."""
    by_stage = meter.by_stage()
    return {
        stage: [[s.label, s.bytes_scanned] for s in by_stage[stage].statements if not s.ddl]
        if stage in by_stage
        else []
        for stage in CYCLE_STAGES
    }


def one_history(
    root: Settings,
    days: int,
    recent: list[TimedChange],
    change_set: list[TimedChange],
    scale: float,
    recent_start: datetime,
) -> dict[str, Any]:
    settings = dataset(root, f"h{days}d")
    older: list[TimedChange] = []
    older_orders = 0
    if days > RECENT_DAYS:  # planned up to where the shared recent plan starts
        older_orders = orders_for(RATE * scale, (days - RECENT_DAYS) * DAY_S)
        start = recent_start - timedelta(days=days - RECENT_DAYS)
        older = plan_changes(older_orders, start, recent_start, seed=days)
    stream = ChangeStream(seed=1)
    steps: dict[str, float] = {}
    started = time.monotonic()
    written = write_changes(settings, older + recent, stream)
    steps["write"] = time.monotonic() - started
    LocalCrawler(settings).run()
    steps["crawl"] = time.monotonic() - started - sum(steps.values())
    with DuckDBEngine(settings) as engine:
        compact(settings, engine)
        steps["compact"] = time.monotonic() - started - sum(steps.values())
        build_rollups(settings, engine)
        steps["rollups"] = time.monotonic() - started - sum(steps.values())
        built = time.monotonic() - started
        write_changes(settings, change_set, stream)
        meter = Meter()
        started = time.monotonic()
        # Always with a fold: whether a cycle folds depends on how many base rows its change set
        # touches, which grows with the history (older orders' status changes); a fold in one
        # history and none in another compared two kinds of cycle, not two histories.
        out = run_cycle(settings, engine, meter, fold_fraction=0.0)
        seconds = time.monotonic() - started
    rewritten = getattr(out["compact"], "partitions_rewritten", None)
    figures = {
        "days": days,
        "history_changes": written.events,
        "orders": older_orders + orders_for(RATE * scale, RECENT_DAYS * DAY_S),  # created
        "raw_bytes": written.bytes,
        "live_orders": len(stream.live_orders()),
        "partitions_rewritten": len(rewritten) if rewritten is not None else None,
        "cycle_seconds": round(seconds, 2),
        "statements": statements(meter),
    }
    print(
        f"  {days:>5} days: {written.events:,} changes ({mib(written.bytes)} raw), "
        f"{figures['live_orders']:,} live orders; built in {built:.0f}s "
        f"({', '.join(f'{k} {v:.0f}s' for k, v in steps.items())}), cycle {seconds:.1f}s",
        flush=True,
    )
    drop_bucket(settings)
    return figures


def bench_histories(root: Settings, days: list[int], scale: float, size: int) -> list[dict[str, Any]]:
    print(
        f"\n== one cycle on {', '.join(map(str, days))} days of history at {RATE:g} changes/s "
        f"x scale {scale:g} ({RATE * scale:g} changes/s); change set: the newest {size} changes =="
    )
    end = datetime.now(UTC) - timedelta(hours=1)
    recent_start = end - timedelta(days=RECENT_DAYS)
    plan = plan_changes(orders_for(RATE * scale, RECENT_DAYS * DAY_S), recent_start, end, seed=1)
    recent, change_set = plan[:-size], plan[-size:]
    hours = (change_set[-1].at - change_set[0].at) / 3600
    print(f"  the change set spans the last {hours:.1f} h of the scaled history")
    return [one_history(root, d, recent, change_set, scale, recent_start) for d in days]


def bench_partitions(root: Settings, day_orders: list[int], scale: float, size: int) -> list[dict[str, Any]]:
    scaled = [max(1, round(n * scale)) for n in day_orders]
    print(
        f"\n== compaction of the same {size} changes into one day of "
        f"{' vs '.join(f'{n:,}' for n in scaled)} orders "
        f"({' vs '.join(f'{n:,}' for n in day_orders)} x {scale:g}) =="
    )
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    # New orders of the day's last hour, as a cycle's new objects all land in the current hour.
    last_hour = day + timedelta(hours=23)
    change_set = plan_changes(orders_for(1, size), last_hour, day + timedelta(days=1), seed=6)[:size]
    out = []
    for orders, full in zip(scaled, day_orders, strict=True):
        settings = dataset(root, f"p{orders}")
        # The day's orders up to its last hour: that hour's raw partition holds the change set
        # alone, so what grows here is the Parquet partition, not the raw hour a cycle's selector
        # reads (that grows with the change rate, whatever the history: docs/design.md §12).
        base = plan_changes(orders, day, last_hour, seed=5)
        written = write_changes(settings, base)
        LocalCrawler(settings).run()
        with DuckDBEngine(settings) as engine:
            compact(settings, engine)
            stored = prefix_bytes(settings, "curated/orders_latest/")  # the day's one version
            write_changes(settings, sorted(change_set, key=lambda c: c.at), ChangeStream(seed=6))
            meter = Meter()
            with meter.stage("compact"):
                report = compact(settings, meter.engine(engine))
        stmts = statements(meter)["compact"]
        total = sum(b for _, b in stmts)
        print(
            f"  {orders:>9,} orders ({written.events:,} changes, {mib(written.bytes)} raw): "
            f"partition {mib(stored)} of Parquet; compaction read {mib(total)} in {len(stmts)} statements",
            flush=True,
        )
        out.append(
            {
                "orders": orders,
                "unscaled_orders": full,
                "changes": written.events,
                "raw_bytes": written.bytes,
                "partition_bytes": stored,
                "statements": stmts,
                "partitions_rewritten": len(getattr(report, "partitions_rewritten", []) or []),
            }
        )
        drop_bucket(settings)
    return out


def print_tables(histories: list[dict[str, Any]], partitions: list[dict[str, Any]]) -> None:
    if histories:
        print_histories(histories)
    if len(partitions) > 1:
        small, big = partitions[0], partitions[-1]
        a, b = (sum(x for _, x in p["statements"]) for p in (small, big))
        print(
            f"  compaction: {big['orders'] / small['orders']:.0f}x the partition → "
            f"{b / max(a, 1):.2f}x the bytes "
            f"({mib(a)} → {mib(b)}; target ≤ 1.5x)"
        )


def print_histories(histories: list[dict[str, Any]]) -> None:
    print(
        "\n== bytes scanned per stage of one cycle (statements in brackets); ratio to the smallest history =="
    )
    head = (
        "| stage | "
        + " | ".join(f"{h['days']} days" for h in histories)
        + " | "
        + " | ".join(f"x at {h['days']} d" for h in histories[1:])
        + " |"
    )
    print(head)
    print("|---|" + "---:|" * (2 * len(histories) - 1))
    totals = [0] * len(histories)
    for stage in [*CYCLE_STAGES, "total"]:
        if stage == "total":
            sizes, counts = totals, [sum(len(s) for s in h["statements"].values()) for h in histories]
        else:
            sizes = [cycle_bytes(h, [stage]) for h in histories]
            counts = [len(h["statements"][stage]) for h in histories]
            totals = [t + s for t, s in zip(totals, sizes, strict=True)]
        cells = [f"{mib(b)} ({n})" for b, n in zip(sizes, counts, strict=True)]
        ratios = [f"{b / sizes[0]:.2f}x" if sizes[0] else "-" for b in sizes[1:]]
        print(f"| {stage} | " + " | ".join(cells + ratios) + " |")
    if len(histories) > 1:
        first, last = histories[0], histories[-1]
        grow = last["history_changes"] / first["history_changes"]
        for label, stages in (
            ("one cycle with the hourly stages", CYCLE_STAGES),
            ("one cycle of a cadence tick", [s for s in CYCLE_STAGES if s not in HOURLY_STAGES]),
        ):
            ratio = cycle_bytes(last, stages) / max(1, cycle_bytes(first, stages))
            print(f"\n  {grow:.1f}x the history → {label} reads {ratio:.2f}x the bytes (target ≤ 1.5x)")


def cycle_bytes(history: dict[str, Any], stages: Any) -> int:
    return sum(b for stage in stages for _, b in history["statements"].get(stage, []))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", default="3,10,30", help="history sizes in days")
    parser.add_argument("--scale", type=float, default=0.002, help="share of the 10 changes/s order rate")
    parser.add_argument("--changes", type=int, default=600, help="the change set (newest changes)")
    parser.add_argument("--day-orders", default="1000000,10000000", help="orders of the touched day (part 2)")
    parser.add_argument("--partition-scale", type=float, default=0.002)
    parser.add_argument("--partition-changes", type=int, help="default: a minute at 1,000/s x the scale")
    parser.add_argument("--skip-partitions", action="store_true")
    parser.add_argument(
        "--only-partitions", action="store_true", help="part 2 only (with --write: keeps part 1's figures)"
    )
    parser.add_argument("--write", action="store_true", help=f"store the figures in {OUT.relative_to(ROOT)}")
    args = parser.parse_args()
    days = [int(d) for d in args.days.split(",")]
    print(
        f"bench_history on {os.cpu_count()} CPUs; scale factor {args.scale:g} (history), "
        f"{args.partition_scale:g} (partitions)"
    )
    started = time.monotonic()
    with emulator() as root:
        create_orders_table(root)
        histories = [] if args.only_partitions else bench_histories(root, days, args.scale, args.changes)
        partitions = (
            []
            if args.skip_partitions
            else bench_partitions(
                root,
                [int(n) for n in args.day_orders.split(",")],
                args.partition_scale,
                args.partition_changes or max(1, round(PARTITION_RATE * 60 * args.partition_scale)),
            )
        )
    print_tables(histories, partitions)
    print(f"\n  took {time.monotonic() - started:.0f}s")
    if args.write and args.only_partitions:
        figures = json.loads(OUT.read_text())
        figures.update(partition_scale=args.partition_scale, partitions=partitions)
        OUT.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"  updated the partition figures in {OUT.relative_to(ROOT)}")
    elif args.write:
        figures = {
            "scale": args.scale,
            "rate": RATE,
            "changes_per_cycle": args.changes,
            "histories": histories,
            "partition_scale": args.partition_scale,
            "partition_rate": PARTITION_RATE,
            "partitions": partitions,
        }
        OUT.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"  wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
