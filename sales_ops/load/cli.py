"""`sales-ops load`: mock orders written to DynamoDB."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sales_ops.cli_common import (
    bounded,
    console,
    err,
    fail,
    friendly_errors,
    require_local,
    running,
    settings,
)

app = typer.Typer()


@app.command("load")
def load(
    orders: Annotated[
        int, typer.Option(help="How many orders to create (each has several changes).", min=0, max=10**9)
    ],
    rate: Annotated[float, typer.Option(help="Changes per second; 0 = as fast as possible.")] = 500.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible orders and lifecycles.")] = None,
    wait: Annotated[bool, typer.Option(help="Return only when every change has reached S3.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits before giving up.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    continuous: Annotated[
        bool, typer.Option(help="After the --orders, keep orders living at --rate until Ctrl-C.")
    ] = False,
) -> None:
    """Write mock orders (inserts, status updates, deletes) to DynamoDB."""
    from sales_ops.load.shop import run_live_load, run_load
    from sales_ops.local.progress import wait_delivered

    if rate < 0:
        raise fail("--rate must be ≥ 0 (0 means as fast as possible)", 2)
    if continuous and (rate == 0 or wait):
        raise fail("--continuous needs a --rate above 0, and never ends: no --wait", 2)
    bounded("--rate", rate, 0, 1e6)
    bounded("--timeout", timeout, 0, 86400, low_open=True)
    with friendly_errors():
        cfg = running(settings())
        if wait:
            require_local(cfg, "--wait")
        with Progress(
            TextColumn("[bold]load"),
            BarColumn(),
            TextColumn("{task.completed} changes"),
            TimeElapsedColumn(),
            console=err,
            transient=as_json,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("load", total=None)
            summary = run_load(
                cfg, orders, rate=rate, seed=seed, on_progress=lambda n: progress.advance(task, n)
            )
        if continuous:
            err.print(f"continuous load at {rate:g} changes/s; Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):  # the summary counts what was written
                run_live_load(cfg, rate, seed=None if seed is None else seed + 1, summary=summary)
        result = {**asdict(summary), "changes": summary.changes, "changes_per_s": round(summary.rate, 1)}
        if wait and not summary.interrupted:
            result["delivered_after_s"] = round(wait_delivered(cfg, timeout), 2)
    if as_json:
        print(json.dumps(result))
    else:
        console.print(
            f"{'interrupted: ' if summary.interrupted else ''}"
            f"wrote {summary.orders} orders: {summary.inserts} inserts, {summary.updates} updates, "
            f"{summary.deletes} deletes in {summary.seconds:.1f}s ({summary.rate:.0f} changes/s)",
            soft_wrap=True,
        )
        if "delivered_after_s" in result:
            console.print(f"every change reached S3 {result['delivered_after_s']}s after the last write")
    if summary.interrupted:
        raise typer.Exit(130)
