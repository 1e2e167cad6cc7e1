"""`sales-ops backfill`: a DynamoDB export, and orders_latest brought back to it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import Progress, TextColumn

from sales_ops.backfill import ExportError, apply_export, backfill, start_export
from sales_ops.backfill.export import wait_export
from sales_ops.cli_common import console, data_errors, err, fail, friendly_errors, human_size, settings

app = typer.Typer()


def _parse_time(value: str | None) -> datetime | None:
    """--at: ISO-8601 (a time without zone is UTC)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--at {value!r}: give an ISO-8601 time, e.g. 2026-12-01T17:00:00Z", 2) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@app.command("backfill")
def backfill_cmd(
    wait: Annotated[
        bool, typer.Option(help="Wait for the export, then repair the lake (else: start it and return).")
    ] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="Export the table as of this time (ISO-8601; default now).")
    ] = None,
    export_arn: Annotated[
        str | None, typer.Option("--export", help="Apply this completed export instead of starting one.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits for the export.")] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export the table (ExportTableToPointInTime) and bring orders_latest back to it."""
    from sales_ops.targets import engine_for

    when = _parse_time(at)
    if export_arn is not None and not re.fullmatch(
        r"arn:aws[\w-]*:dynamodb:[\w-]+:\d{12}:table/[^/]+/export/[^/]+", export_arn
    ):
        raise fail(
            f"--export {export_arn!r} is not an export ARN (arn:aws:dynamodb:…:table/NAME/export/ID)", 2
        )
    with friendly_errors(), data_errors(), _export_errors(ExportError):
        cfg = settings()
        if export_arn is None and not wait:
            info = start_export(cfg, when)
            if as_json:
                print(json.dumps({"export_arn": info.arn, "status": info.status}))
            else:
                console.print(f"export {info.export_id} started ({info.status}); when it completes, run")
                console.print(f"  sales-ops backfill --export {info.arn}")
            return
        engine = engine_for(cfg)
        try:
            with Progress(
                TextColumn("[bold]export"),
                TextColumn("{task.fields[status]}"),
                TextColumn("{task.fields[elapsed]}s"),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            ) as progress:
                task = progress.add_task("export", total=None, status="starting", elapsed="0")

                def shown(info: Any, elapsed: float) -> None:
                    progress.update(task, status=f"{info.export_id} {info.status}", elapsed=f"{elapsed:.0f}")

                if export_arn:
                    report = apply_export(cfg, engine, wait_export(cfg, export_arn, timeout, shown))
                else:
                    report = backfill(cfg, engine, when, timeout, on_progress=shown)
        finally:
            engine.close()
    if as_json:
        print(json.dumps(report.as_dict(), default=str))
        return
    console.print(
        f"export {report.export_id} as of {report.export_time}: {report.export_items} items, "
        f"{report.missing} missing, {report.extra} extra, {report.different} different in the lake "
        f"({report.newer_than_export} changed since the export, left to the stream)"
    )
    if report.rows_written:
        partitions = len(report.merge.partitions_rewritten) if report.merge else 0
        console.print(
            f"wrote {report.rows_written} baseline rows; merged into {partitions} partition(s): "
            f"read {human_size(report.bytes_read)}, wrote {human_size(report.bytes_written)} "
            f"in {report.seconds:.1f}s (export {report.export_seconds:.1f}s)"
        )
    else:
        console.print("orders_latest already equals the export: nothing written")


@contextmanager
def _export_errors(kind: type[Exception]) -> Iterator[None]:
    try:
        yield
    except kind as exc:
        raise fail(str(exc)) from None
