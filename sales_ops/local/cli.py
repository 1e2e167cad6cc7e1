"""`sales-ops local …`: start, stop and inspect the embedded AWS and its stand-ins."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from sales_ops.cli_common import console, friendly_errors, require_local, settings

app = typer.Typer(help="The embedded AWS on 127.0.0.1 and its stand-ins.", no_args_is_help=True)


@app.command("up")
def local_up() -> None:
    """Start the emulator on 127.0.0.1 and the Pipe/Firehose stand-ins (idempotent)."""
    from sales_ops.local.supervisor import up

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local up")
        up(cfg, log=console.print)
        console.print(f"[green]ready[/]: endpoint {cfg.endpoint_url}, bucket {cfg.bucket}, table {cfg.table}")


@app.command("down")
def local_down() -> None:
    """Stop the stand-ins (flushing their buffers) and the emulator (snapshotting its state)."""
    from sales_ops.local.supervisor import down

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local down")
        down(cfg, log=console.print)


@app.command("status")
def local_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Processes, and each stage's lag (records not yet passed on) and counters."""
    from sales_ops.local.pipe import dead_letter_count
    from sales_ops.local.progress import pipeline_lag, worker_status
    from sales_ops.local.supervisor import port_open, processes, restarts

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local status")
        report: dict = {
            "endpoint": cfg.endpoint_url,
            "state_dir": str(cfg.state_dir),
            "processes": processes(cfg),
            "stages": [],
            "restarts": restarts(cfg),
            "dead_letters": dead_letter_count(cfg),  # records the Pipe gave up on (docs/design.md §5)
        }
        if report["processes"]["emulator"] and port_open(cfg.port):
            counters = worker_status(cfg)
            for lag in pipeline_lag(cfg):
                report["stages"].append({**asdict(lag), "counters": counters.get(lag.stage, {})})
        if as_json:
            print(json.dumps(report, indent=2))
        else:
            _print_status(report)
        off_stream = any(stage["checkpoints_off_stream"] for stage in report["stages"])
        if not all(report["processes"].values()) or report["dead_letters"] or off_stream:
            raise typer.Exit(1)


def _print_status(report: dict) -> None:
    from datetime import datetime

    console.print(f"state dir {report['state_dir']}", markup=False, soft_wrap=True)
    for name, pid in report["processes"].items():
        state = f"[green]running[/] (pid {pid})" if pid else "[red]stopped[/]"
        restarted = report.get("restarts", {}).get(name)
        if restarted:
            at = datetime.fromtimestamp(restarted["last_at"]).strftime("%H:%M:%S")
            state += f", restarted {restarted['restarts']}x (last {at})"
        console.print(f"{name:9} {state}")
    if report.get("dead_letters"):
        console.print(
            f"[red]dead letters[/] {report['dead_letters']} stream records the Pipe gave up on: "
            f"{report['state_dir']}/dlq/pipe.jsonl (each with its reason)",
            soft_wrap=True,
        )
    if not report["stages"]:
        return
    table = Table("stage", "pending", "oldest pending", "records in", "out/ok", "failed", "errors")
    for stage in report["stages"]:
        c = stage["counters"]
        age = stage["oldest_pending_age_s"]
        table.add_row(
            stage["stage"],
            str(stage["pending"]),
            "-" if age is None else f"{age:.1f}s",
            str(c.get("records_in", "-")),
            str(c.get("records_out", c.get("ok", "-"))),
            str(c.get("processing_failed", "-")),
            str(c.get("errors", "-")),
        )
    console.print(table)
    for stage in report["stages"]:
        if stage["checkpoints_off_stream"]:
            shards = ", ".join(stage["checkpoints_off_stream"])
            console.print(
                f"[red]{stage['stage']} checkpoint ahead of its stream[/] on {shards}: "
                "its new records are never read (was the emulator's journal lost?)",
                soft_wrap=True,
            )
