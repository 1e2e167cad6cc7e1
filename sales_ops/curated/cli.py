"""`sales-ops compact` and `sales-ops rollup`: orders_latest and the rollups."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Annotated

import typer

from sales_ops.cli_common import (
    HOURS_MAX,
    bounded,
    console,
    data_errors,
    err,
    fail,
    friendly_errors,
    human_size,
    running,
    settings,
)
from sales_ops.settings import Settings, cadence_minutes_from_env

app = typer.Typer()


@app.command("compact")
def compact_cmd(
    full: Annotated[bool, typer.Option("--full", help="Rebuild every partition from all raw data.")] = False,
    retention_hours: Annotated[float, typer.Option(help="Keep superseded versions this long.")] = 24.0,
    lookback_hours: Annotated[float, typer.Option(help="How far back to look for late raw objects.")] = 72.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    break_lock: Annotated[
        bool, typer.Option("--break-lock", help="Remove the compaction lock first (shows its holder, asks).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="--break-lock without asking.")] = False,
    if_due: Annotated[
        bool,
        typer.Option("--if-due", help="Only if the last compaction is SALES_OPS_CADENCE_MINUTES old."),
    ] = False,
) -> None:
    """Compact new raw events into orders_latest (a delta per cycle; folds into the base when due)."""
    from sales_ops.curated.compaction import compact
    from sales_ops.curated.state import minutes_since_last_run
    from sales_ops.targets import engine_for

    bounded("--retention-hours", retention_hours, 0, HOURS_MAX)
    bounded("--lookback-hours", lookback_hours, 0, HOURS_MAX, low_open=True)
    with friendly_errors(), data_errors():
        cfg = running(settings())
        if if_due:
            cadence = cadence_minutes_from_env(os.environ)
            since = minutes_since_last_run(cfg)
            if since is not None and since < cadence:
                console.print(f"not due: the last compaction was {since:.1f} min ago (cadence {cadence} min)")
                return
        if break_lock:
            _break_compaction_lock(cfg, yes)
        engine = engine_for(cfg)
        try:
            # A rebuild past the scan cutoff goes in passes: say where it is (stderr, not the report).
            report = compact(cfg, engine, full, retention_hours, lookback_hours, progress=err.print)
        finally:
            engine.close()
    if as_json:
        print(json.dumps(asdict(report)))
        return
    if not report.partitions_rewritten and not report.deltas_written and not full:
        console.print(f"nothing new to compact (watermark {report.watermark_after or 'none'})")
    elif not report.partitions_rewritten:
        console.print(
            f"compacted {report.new_objects} raw object(s) into {len(report.deltas_written)} delta(s), "
            f"{report.delta_rows} order(s) changed, {report.rejected} change(s) rejected: "
            f"read {human_size(report.bytes_read)} in {report.seconds:.1f}s"
        )
    else:
        console.print(
            f"{'rebuilt' if full else 'compacted'} {report.new_objects} raw object(s) into "
            f"{len(report.partitions_rewritten)} partition(s), {report.rows} live rows "
            f"(version {report.version}, {report.passes} pass(es)): "
            f"read {human_size(report.bytes_read)}, wrote {human_size(report.bytes_written)} "
            f"in {report.seconds:.1f}s"
        )
    if report.versions_removed:
        console.print(f"removed {report.versions_removed} superseded version(s)")


def _break_compaction_lock(cfg: Settings, yes: bool) -> None:
    """Show the lock's holder, confirm, and remove it (for a holder the lease does not clear)."""
    from sales_ops.curated import lock

    holder = lock.read_holder(cfg)
    if holder is None:
        console.print("the compaction lock is free")
        return
    console.print(f"compaction lock held by {lock.describe(holder)}")
    if not yes and not typer.confirm("Break it? A compaction still running would stop at its next step"):
        raise typer.Exit(1)
    lock.break_lock(cfg)
    console.print("compaction lock removed")


@app.command("rollup")
def rollup_cmd(
    name: Annotated[list[str] | None, typer.Option("--name", help="Only this rollup (repeatable).")] = None,
    retention_hours: Annotated[float, typer.Option(help="Keep superseded versions this long.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Rebuild the Parquet rollups (sales_by_product_hourly, customer_activity, inventory_status,
    sales_totals), each from what changed since its last build."""
    from sales_ops.curated.rollups import ROLLUPS, build_rollup
    from sales_ops.targets import engine_for

    unknown = sorted(set(name or ()) - set(ROLLUPS))
    if unknown:
        raise fail(f"unknown rollup(s) {', '.join(unknown)}; known: {', '.join(ROLLUPS)}", 2)
    bounded("--retention-hours", retention_hours, 0, HOURS_MAX)
    with friendly_errors(), data_errors():
        cfg = running(settings())
        engine = engine_for(cfg)
        try:
            reports = [build_rollup(cfg, engine, n, retention_hours) for n in (name or ROLLUPS)]
        finally:
            engine.close()
    if as_json:
        print(json.dumps([asdict(r) for r in reports]))
        return
    for r in reports:
        written = human_size(r.bytes_written)
        console.print(f"{r.name}: {r.rows} rows, {written} in {r.seconds:.1f}s → {r.location}")
