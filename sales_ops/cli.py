"""The `sales-ops` command line. Every command has --help; data output has --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sales_ops.settings import Settings, SettingsError

app = typer.Typer(
    help="Operate the real-time sales pipeline: embedded AWS, load, catalogue, compaction, queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="The embedded AWS on 127.0.0.1 and its stand-ins.", no_args_is_help=True)
app.add_typer(local_app, name="local")

console = Console()
err = Console(stderr=True)


class State:
    target: str | None = None


@app.callback()
def main(
    target: Annotated[
        str | None,
        typer.Option(help="local (embedded, default) or aws (deployed stack); env SALES_OPS_TARGET."),
    ] = None,
) -> None:
    State.target = target


def settings() -> Settings:
    return Settings.from_env(State.target)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures become one clear line and a non-zero exit, not a traceback."""
    from sales_ops.local.progress import DeliveryTimeout
    from sales_ops.local.supervisor import EmulatorError

    try:
        yield
    except (SettingsError, EmulatorError, DeliveryTimeout, ValueError) as exc:
        raise fail(str(exc)) from None
    except EndpointConnectionError as exc:
        raise fail(
            f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is the embedded AWS running? "
            "Start it with `sales-ops local up`."
        ) from None
    except NoCredentialsError:
        raise fail("no AWS credentials found: configure a profile or AWS_* variables") from None
    except ClientError as exc:
        raise fail(f"AWS said: {exc}") from None


def require_local(cfg: Settings, what: str) -> None:
    if not cfg.is_local:
        raise fail(f"{what} is for the local target only (current target: {cfg.target})", 2)


# --- local -----------------------------------------------------------------------------------
@local_app.command("up")
def local_up() -> None:
    """Start the emulator on 127.0.0.1 and the Pipe/Firehose stand-ins (idempotent)."""
    from sales_ops.local.supervisor import up

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local up")
        up(cfg, log=console.print)
        console.print(f"[green]ready[/]: endpoint {cfg.endpoint_url}, bucket {cfg.bucket}, table {cfg.table}")


@local_app.command("down")
def local_down() -> None:
    """Stop the stand-ins (flushing their buffers) and the emulator (snapshotting its state)."""
    from sales_ops.local.supervisor import down

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local down")
        down(cfg, log=console.print)


@local_app.command("status")
def local_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Processes, and each stage's lag (records not yet passed on) and counters."""
    from sales_ops.local.progress import pipeline_lag, worker_status
    from sales_ops.local.supervisor import port_open, processes

    with friendly_errors():
        cfg = settings()
        require_local(cfg, "local status")
        report: dict = {"endpoint": cfg.endpoint_url, "processes": processes(cfg), "stages": []}
        if report["processes"]["emulator"] and port_open(cfg.port):
            counters = worker_status(cfg)
            for lag in pipeline_lag(cfg):
                report["stages"].append({**asdict(lag), "counters": counters.get(lag.stage, {})})
        if as_json:
            print(json.dumps(report, indent=2))
        else:
            _print_status(report)
        if not all(report["processes"].values()):
            raise typer.Exit(1)


def _print_status(report: dict) -> None:
    for name, pid in report["processes"].items():
        state = f"[green]running[/] (pid {pid})" if pid else "[red]stopped[/]"
        console.print(f"{name:9} {state}")
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


# --- deploy ----------------------------------------------------------------------------------
StackOption = Annotated[
    str, typer.Option("--stack", envvar="SALES_OPS_STACK", help="CloudFormation stack name.")
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: AWS_REGION or the profile's).")]


@app.command("deploy")
def deploy(
    stack: StackOption = "sales-ops",
    region: RegionOption = None,
    parameter: Annotated[
        list[str] | None, typer.Option("--parameter", help="Template parameter KEY=VALUE (repeatable).")
    ] = None,
    artifacts_bucket: Annotated[str | None, typer.Option(help="Bucket for the Lambda package.")] = None,
    no_orjson: Annotated[
        bool, typer.Option("--no-orjson", help="Package the Lambda without orjson.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stack outputs as JSON.")] = False,
) -> None:
    """Package the Lambda, then create or update the stack in infra/ through a change set."""
    from sales_ops import stack as cfn

    params = {}
    for item in parameter or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--parameter wants KEY=VALUE, got {item!r}", 2)
        params[key] = value
    with friendly_errors():
        outputs = cfn.deploy(
            stack,
            region or cfn.default_region(),
            parameters=params,
            artifacts_bucket=artifacts_bucket,
            with_orjson=not no_orjson,
            build_dir=Settings.from_env("local").state_dir / "build",
            progress=err.print,
        )
    if as_json:
        print(json.dumps(outputs, indent=2))
    else:
        for key, value in sorted(outputs.items()):
            console.print(f"{key:28} {value}")


@app.command("destroy")
def destroy(
    stack: StackOption = "sales-ops",
    region: RegionOption = None,
    delete_artifacts: Annotated[bool, typer.Option(help="Also delete the Lambda artifacts bucket.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Empty the data bucket and delete the stack."""
    from sales_ops import stack as cfn

    if not yes and not typer.confirm(f"Delete stack {stack} and every object in its bucket?"):
        raise typer.Exit(1)
    with friendly_errors():
        existed = cfn.destroy(
            stack, region or cfn.default_region(), delete_artifacts=delete_artifacts, progress=err.print
        )
    console.print(f"stack {stack} deleted" if existed else f"no stack named {stack}")


# --- load ------------------------------------------------------------------------------------
@app.command("load")
def load(
    orders: Annotated[int, typer.Option(help="How many orders to create (each has several changes).", min=0)],
    rate: Annotated[float, typer.Option(help="Changes per second; 0 = as fast as possible.")] = 500.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible orders and lifecycles.")] = None,
    wait: Annotated[bool, typer.Option(help="Return only when every change has reached S3.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits before giving up.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write mock orders (inserts, status updates, deletes) to DynamoDB."""
    from sales_ops.load import run_load
    from sales_ops.local.progress import wait_delivered

    if rate < 0:
        raise fail("--rate must be ≥ 0 (0 means as fast as possible)", 2)
    with friendly_errors():
        cfg = settings()
        if wait:
            require_local(cfg, "--wait")
        with Progress(
            TextColumn("[bold]load"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("changes"),
            TimeRemainingColumn(),
            console=err,
            transient=as_json,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("load", total=None)
            summary = run_load(
                cfg,
                orders,
                rate=rate,
                seed=seed,
                on_total=lambda n: progress.update(task, total=n),
                on_progress=lambda n: progress.advance(task, n),
            )
        result = {**asdict(summary), "changes": summary.changes, "changes_per_s": round(summary.rate, 1)}
        if wait:
            result["delivered_after_s"] = round(wait_delivered(cfg, timeout), 2)
    if as_json:
        print(json.dumps(result))
    else:
        console.print(
            f"wrote {summary.orders} orders: {summary.inserts} inserts, {summary.updates} updates, "
            f"{summary.deletes} deletes in {summary.seconds:.1f}s ({summary.rate:.0f} changes/s)"
        )
        if wait:
            console.print(f"every change reached S3 {result['delivered_after_s']}s after the last write")


if __name__ == "__main__":
    sys.exit(app())
