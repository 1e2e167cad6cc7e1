"""`sales-ops crawl`: the crawler catalogues raw/orders/ as raw_orders."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from sales_ops.cli_common import bounded, console, data_errors, friendly_errors, running, settings

app = typer.Typer()


@app.command("crawl")
def crawl(
    wait: Annotated[bool, typer.Option(help="Return when the crawl has finished (local: always).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits for the crawler.")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the crawler: catalogue raw/orders/ as raw_orders (new partitions, new columns)."""
    from sales_ops.targets import crawler_for

    bounded("--timeout", timeout, 0, 86400, low_open=True)
    with friendly_errors(), data_errors():
        report = crawler_for(running(settings())).run(wait=wait, timeout=timeout)
    if as_json:
        print(json.dumps(asdict(report)))
        return
    if report.state == "RUNNING":
        console.print("crawler started; `sales-ops crawl --wait` waits for it")
        return
    console.print(
        f"crawl done in {report.seconds:.1f}s: {report.tables_created} table(s) created, "
        f"{report.tables_updated} updated, {report.partitions_added} partition(s) added, "
        f"{len(report.columns)} columns"
        + (f" (new: {', '.join(report.columns_added)})" if report.columns_added else "")
    )
