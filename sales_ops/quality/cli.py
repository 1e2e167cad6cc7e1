"""`sales-ops check`: the data-quality checks, exit 1 when one fails."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.text import Text

from sales_ops.cli_common import (
    HOURS_MAX,
    bounded,
    console,
    data_errors,
    fail,
    friendly_errors,
    printable,
    running,
    settings,
)
from sales_ops.quality import run_checks

app = typer.Typer()


@app.command("check")
def check_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
    max_age: Annotated[float, typer.Option(help="Freshness: newest raw data at most this old (s).")] = 3600.0,
    reconcile: Annotated[bool, typer.Option(help="Compare orders_latest with a DynamoDB scan.")] = True,
    reconcile_from: Annotated[
        str,
        typer.Option(
            help="auto (scan locally, sample on aws), scan (the table: read capacity per item), "
            "sample (a few hundred orders each side) or export (the latest export)."
        ),
    ] = "auto",
    full: Annotated[
        bool, typer.Option("--full", help="unique_order_id and amounts over the whole table.")
    ] = False,
) -> None:
    """Run the data-quality checks; exit 1 when one fails. unique_order_id and amounts check what
    the last compaction wrote, or the whole table with --full."""
    if reconcile_from not in ("auto", "scan", "sample", "export"):
        raise fail(f"--reconcile-from must be auto, scan, sample or export, not {reconcile_from!r}", 2)
    from sales_ops.targets import engine_for

    bounded("--max-age", max_age, 0, HOURS_MAX * 3600, low_open=True)
    with friendly_errors(), data_errors():
        cfg = running(settings())
        engine = engine_for(cfg)
        try:
            outcomes = run_checks(
                cfg,
                engine,
                max_age_s=max_age,
                reconcile=reconcile,
                reconcile_source=reconcile_from,
                full=full,
            )
        finally:
            engine.close()
    if as_json:
        print(json.dumps([asdict(o) for o in outcomes], default=str))
    else:
        for o in outcomes:
            mark = Text("PASS", style="green") if o.passed else Text("FAIL", style="bold red")
            console.print(mark + Text(printable(f" {o.name}: {o.summary}")))
    if not all(o.passed for o in outcomes):
        raise typer.Exit(1)
