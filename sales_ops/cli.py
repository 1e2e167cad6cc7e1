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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Create the change set, print the changes, delete it.")
    ] = False,
) -> None:
    """Package the Lambda, then create or update the stack in infra/ through a change set."""
    from sales_ops import deploy as cfn

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
            dry_run=dry_run,
        )
    if dry_run:
        return
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
    detach: Annotated[
        bool, typer.Option("--detach", help="Detach the operator policy from users/roles/groups first.")
    ] = False,
) -> None:
    """Empty the data bucket and delete the stack."""
    from sales_ops import deploy as cfn

    if not yes and not typer.confirm(f"Delete stack {stack} and every object in its bucket?"):
        raise typer.Exit(1)
    with friendly_errors():
        existed = cfn.destroy(
            stack,
            region or cfn.default_region(),
            delete_artifacts=delete_artifacts,
            detach=detach,
            progress=err.print,
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
    from sales_ops.load.shop import run_load
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


# --- catalogue, compaction, rollups, queries, checks ------------------------------------------
@contextmanager
def data_errors() -> Iterator[None]:
    """Query, crawl and compaction failures: the engine's own message, exit 1."""
    from sales_ops.catalog.crawlers import CrawlerError
    from sales_ops.curated.lock import CompactionError
    from sales_ops.query import QueryError

    try:
        yield
    except (QueryError, CrawlerError, CompactionError) as exc:  # MissingTableError names the table
        raise fail(str(exc)) from None


def _plain(value: object) -> object:
    """JSON/CSV-friendly values: exact decimals stay exact, times become ISO-8601."""
    from datetime import date, datetime
    from decimal import Decimal

    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@app.command("crawl")
def crawl(
    wait: Annotated[bool, typer.Option(help="Return when the crawl has finished (local: always).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits for the crawler.")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the crawler: catalogue raw/orders/ as raw_orders (new partitions, new columns)."""
    from sales_ops.targets import crawler_for

    with friendly_errors(), data_errors():
        report = crawler_for(settings()).run(wait=wait, timeout=timeout)
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


@app.command("compact")
def compact_cmd(
    full: Annotated[bool, typer.Option("--full", help="Rebuild every partition from all raw data.")] = False,
    retention_hours: Annotated[float, typer.Option(help="Keep superseded versions this long.")] = 24.0,
    lookback_hours: Annotated[float, typer.Option(help="How far back to look for late raw objects.")] = 72.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compact new raw events into orders_latest (only the order_date partitions they touch)."""
    from sales_ops.curated.compaction import compact
    from sales_ops.targets import engine_for

    with friendly_errors(), data_errors():
        cfg = settings()
        engine = engine_for(cfg)
        try:
            report = compact(cfg, engine, full, retention_hours, lookback_hours)
        finally:
            engine.close()
    if as_json:
        print(json.dumps(asdict(report)))
        return
    if not report.partitions_rewritten and not full:
        console.print(f"nothing new to compact (watermark {report.watermark_after or 'none'})")
    else:
        console.print(
            f"{'rebuilt' if full else 'compacted'} {report.new_objects} raw object(s) into "
            f"{len(report.partitions_rewritten)} partition(s), {report.rows} live rows "
            f"(version {report.version}): "
            f"read {_size(report.bytes_read)}, wrote {_size(report.bytes_written)} in {report.seconds:.1f}s"
        )
    if report.versions_removed:
        console.print(f"removed {report.versions_removed} superseded version(s)")


@app.command("rollup")
def rollup_cmd(
    name: Annotated[list[str] | None, typer.Option("--name", help="Only this rollup (repeatable).")] = None,
    retention_hours: Annotated[float, typer.Option(help="Keep superseded versions this long.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Rebuild the Parquet rollups (sales_by_product_hourly, customer_activity, inventory_status)."""
    from sales_ops.curated.rollups import ROLLUPS, build_rollup
    from sales_ops.targets import engine_for

    unknown = sorted(set(name or ()) - set(ROLLUPS))
    if unknown:
        raise fail(f"unknown rollup(s) {', '.join(unknown)}; known: {', '.join(ROLLUPS)}", 2)
    with friendly_errors(), data_errors():
        cfg = settings()
        engine = engine_for(cfg)
        try:
            reports = [build_rollup(cfg, engine, n, retention_hours) for n in (name or ROLLUPS)]
        finally:
            engine.close()
    if as_json:
        print(json.dumps([asdict(r) for r in reports]))
        return
    for r in reports:
        console.print(f"{r.name}: {r.rows} rows, {_size(r.bytes_written)} in {r.seconds:.1f}s → {r.location}")


@app.command("query")
def query_cmd(
    sql: Annotated[str | None, typer.Argument(help="SQL in Athena's dialect (Trino).")] = None,
    named: Annotated[str | None, typer.Option("--named", help="A query of sales_ops/sql/ by name.")] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE for a named query.")] = None,
    list_named: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
) -> None:
    """Run SQL or a named query on Athena (aws) or DuckDB (local); shows bytes scanned and time."""
    from sales_ops.query import named_queries
    from sales_ops.targets import engine_for

    if list_named:
        for query_name, description in named_queries().items():
            console.print(f"[bold]{query_name}[/]  {description}")
        return
    if output not in ("table", "json", "csv"):
        raise fail(f"--format must be table, json or csv, not {output!r}", 2)
    if (sql is None) == (named is None):
        raise fail("give either SQL or --named NAME (see `sales-ops query --list`)", 2)
    params = dict(p.split("=", 1) for p in param or [] if "=" in p)
    with friendly_errors(), data_errors():
        engine = engine_for(settings())
        try:
            result = engine.named(named, **params) if named else engine.query(sql or "")
        finally:
            engine.close()
    _print_result(result, output)


def _print_result(result, output: str) -> None:
    import csv

    scanned = _size(result.bytes_scanned)
    stats = f"{len(result.rows)} row(s), {scanned} scanned, {result.seconds:.2f}s ({result.engine})"
    if output == "json":
        print(json.dumps([{k: _plain(v) for k, v in row.items()} for row in result.as_dicts()]))
        err.print(stats)
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([[_plain(v) for v in row] for row in result.rows])
        err.print(stats)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*["NULL" if v is None else str(_plain(v)) for v in row])
        console.print(table)
        console.print(stats)


@app.command("check")
def check_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
    max_age: Annotated[float, typer.Option(help="Freshness: newest raw data at most this old (s).")] = 3600.0,
    reconcile: Annotated[bool, typer.Option(help="Compare orders_latest with a DynamoDB scan.")] = True,
) -> None:
    """Run the data-quality checks; exit 1 when one fails."""
    from sales_ops.quality import run_checks
    from sales_ops.targets import engine_for

    with friendly_errors(), data_errors():
        cfg = settings()
        engine = engine_for(cfg)
        try:
            outcomes = run_checks(cfg, engine, max_age_s=max_age, reconcile=reconcile)
        finally:
            engine.close()
    if as_json:
        print(json.dumps([asdict(o) for o in outcomes], default=str))
    else:
        for o in outcomes:
            mark = "[green]PASS[/]" if o.passed else "[bold red]FAIL[/]"
            console.print(f"{mark} {o.name}: {o.summary}")
    if not all(o.passed for o in outcomes):
        raise typer.Exit(1)


# --- dashboard -------------------------------------------------------------------------------
@app.command("dashboard")
def dashboard(
    port: Annotated[int, typer.Option(help="Port on the loopback interface.")] = 8050,
    host: Annotated[str, typer.Option(help="Loopback address to bind (127.0.0.1 or ::1).")] = "127.0.0.1",
) -> None:
    """Serve the live sales dashboard (refreshes itself every few seconds) until Ctrl-C."""
    from sales_ops.dashboard.app import check_bind, is_loopback, serve

    if not is_loopback(host):
        raise fail(f"--host {host}: the dashboard has no authentication, so it binds to loopback only", 2)
    with friendly_errors():
        cfg = settings()
        check_bind(host, port)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"dashboard on http://{shown}:{port} ({cfg.target} target); Ctrl-C stops it")
        serve(cfg, host=host, port=port)


if __name__ == "__main__":
    sys.exit(app())
