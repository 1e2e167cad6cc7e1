"""The `sales-ops` command line. Every command has --help; data output has --json."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
import typer.core
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sales_ops.settings import Settings, SettingsError

if TYPE_CHECKING:  # imported where used: `sales-ops --help` stays quick
    from sales_ops.query import QueryResult


def _help_type(original):
    """--help shows informative types only: none for flags (typer shows <bool>) or plain text (<str>)."""

    def display_type_rich(self, ctx):
        shown = None if getattr(self, "is_flag", False) else original(self, ctx)
        return None if shown == "<str>" else shown

    return display_type_rich


for _param in (typer.core.TyperOption, typer.core.TyperArgument):
    _param.display_type_rich = _help_type(_param.display_type_rich)  # type: ignore[method-assign]

app = typer.Typer(
    help="Operate the real-time sales pipeline: embedded AWS, load, catalogue, compaction, queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="The embedded AWS on 127.0.0.1 and its stand-ins.", no_args_is_help=True)
app.add_typer(local_app, name="local")

# Data is printed as data: no rich markup or :emoji: codes in what we print (see `_cell`).
console = Console(emoji=False, highlight=False)
err = Console(stderr=True, emoji=False, highlight=False)


class State:
    target: str | None = None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"sales-ops {version('sales-ops')}")
        raise typer.Exit()


@app.callback()
def main(
    target: Annotated[
        str | None,
        typer.Option(
            help="local (embedded, default) or aws (deployed stack); env SALES_OPS_TARGET.",
            metavar="local|aws",  # checked by Settings, which says what is wrong
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    State.target = target


def settings() -> Settings:
    return Settings.from_env(State.target)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text("error: ", style="bold red") + Text(_printable(message)))
    return typer.Exit(code)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Control characters (ESC sequences, backspace, bells…) shown escaped, never sent to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def bounded(option: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """Exit 2 with a clear message unless low ≤ value ≤ high (low < value if low_open).

    NaN and ±inf never pass. Checked before any work starts: typer's own min/max let NaN through.
    """
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lower = f"> {low:g}" if low_open else f"≥ {low:g}"
        raise fail(f"{option} must be {lower} and ≤ {high:g} (got {value})", 2)


HOURS_MAX = 24 * 365 * 10  # ten years: more is a typo


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures become one clear line and a non-zero exit, not a traceback."""
    from sales_ops.local.progress import DeliveryTimeout
    from sales_ops.local.reachable import EmbeddedAwsDown
    from sales_ops.local.supervisor import EmulatorError

    try:
        yield
    except (SettingsError, EmulatorError, DeliveryTimeout, EmbeddedAwsDown, ValueError) as exc:
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


def running(cfg: Settings) -> Settings:
    """cfg, once the local target's emulator is known to answer (fails at once, not after retries)."""
    from sales_ops.local.reachable import require_reachable

    require_reachable(cfg)
    return cfg


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
    dagster: Annotated[
        bool,
        typer.Option(
            "--dagster",
            help="Deploy the Dagster control plane (infra/dagster.yaml) beside the stack instead; "
            "first time: --parameter VpcId=… PrivateSubnetIds=a,b Image=….",
        ),
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
        if dagster:
            outputs = cfn.deploy_dagster(
                stack, region or cfn.default_region(), parameters=params, progress=err.print, dry_run=dry_run
            )
        else:
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
    """Delete the Dagster stack if any, empty the data bucket and delete the stack."""
    from sales_ops import deploy as cfn

    if not yes and not typer.confirm(
        f"Delete stack {stack} (and {cfn.dagster_stack_name(stack)} if deployed) "
        "and every object in its bucket?"
    ):
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
    """JSON-ready values, recursively: exact decimals stay exact, times become ISO-8601, intervals
    ISO-8601 durations, UUIDs text, NaN and ±Infinity the strings "NaN", "Infinity", "-Infinity"
    (JSON has no such numbers)."""
    from datetime import date, datetime, time
    from decimal import Decimal
    from uuid import UUID

    if isinstance(value, Decimal):
        if not value.is_finite():
            return _plain(float(value))
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _duration(delta: timedelta) -> str:
    """An ISO-8601 duration, e.g. P1DT2H3M4.5S (or -P… for a negative interval)."""
    sign, delta = ("-", -delta) if delta < timedelta(0) else ("", delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds + delta.microseconds / 1e6:g}"
    return f"{sign}P{delta.days}DT{hours}H{minutes}M{secs}S"


def _text(value: object) -> str:
    """A value as CSV/table text: NULL-free scalars as is, nested values as JSON, never a Python repr."""
    plain = _plain(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False)
    return str(plain)


def _unique(columns: list[str]) -> list[str]:
    """Column names made unique for JSON objects: a second `x` becomes `x_2`."""
    seen: dict[str, int] = {}
    out = []
    for name in columns:
        n = seen[name] = seen.get(name, 0) + 1
        while n > 1 and f"{name}_{n}" in columns:
            n += 1
        out.append(name if n == 1 else f"{name}_{n}")
    return out


def _size(n: float) -> str:
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
    from sales_ops.settings import cadence_minutes_from_env
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
            f"read {_size(report.bytes_read)} in {report.seconds:.1f}s"
        )
    else:
        console.print(
            f"{'rebuilt' if full else 'compacted'} {report.new_objects} raw object(s) into "
            f"{len(report.partitions_rewritten)} partition(s), {report.rows} live rows "
            f"(version {report.version}, {report.passes} pass(es)): "
            f"read {_size(report.bytes_read)}, wrote {_size(report.bytes_written)} in {report.seconds:.1f}s"
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
    """Rebuild the Parquet rollups (sales_by_product_hourly, customer_activity, inventory_status)."""
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
        console.print(f"{r.name}: {r.rows} rows, {_size(r.bytes_written)} in {r.seconds:.1f}s → {r.location}")


@app.command("query")
def query_cmd(
    sql: Annotated[str | None, typer.Argument(help="SQL in Athena's dialect (Trino).", metavar="SQL")] = None,
    named: Annotated[
        str | None, typer.Option("--named", help="A named query (see --list).", metavar="NAME")
    ] = None,
    output: Annotated[
        Literal["table", "json", "csv"], typer.Option("--format", help="Output format.")
    ] = "table",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A parameter of the named query (repeatable).", metavar="NAME=VALUE"),
    ] = None,
    list_named: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
) -> None:
    """Run SQL or a named query on Athena (aws) or DuckDB (local); shows bytes scanned and time."""
    from sales_ops.query import named_queries, render_named
    from sales_ops.targets import engine_for

    if list_named:
        for query_name, description in named_queries().items():
            console.print(Text(query_name, style="bold") + Text(f"  {description}"), soft_wrap=True)
        return
    if (sql is None) == (named is None):
        raise fail("give either SQL or --named NAME (see `sales-ops query --list`)", 2)
    if param and not named:
        raise fail("--param is for --named queries", 2)
    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--param wants NAME=VALUE, got {item!r}", 2)
        params[key] = value
    with friendly_errors(), data_errors():
        cfg = settings()
        # A named query run by a person is a person's SQL: same limits as any other (see engine).
        text = render_named(named, cfg.database, **params) if named else (sql or "")
        engine = engine_for(running(cfg))
        try:
            result = engine.query(text)
        finally:
            engine.close()
    _print_result(result, output)


def _print_result(result: QueryResult, output: str) -> None:
    import csv

    scanned = _size(result.bytes_scanned)
    stats = f"{len(result.rows)} row(s), {scanned} scanned, {result.seconds:.2f}s ({result.engine})"
    if output == "json":
        names = _unique(result.columns)
        rows = [dict(zip(names, (_plain(v) for v in row), strict=True)) for row in result.rows]
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        err.print(stats, markup=False)
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in result.rows])
        err.print(stats, markup=False)
    else:
        table = Table()
        for column in result.columns:
            table.add_column(_cell(column))
        for row in result.rows:
            table.add_row(*[_cell(v) for v in row])
        console.print(table)
        console.print(stats, markup=False)


def _cell(value: object) -> Text:
    """A table cell as literal text: no markup, no emoji codes, control characters escaped."""
    if value is None:
        return Text("NULL", style="dim")
    return Text(_printable(_text(value)))


@app.command("tables")
def tables_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tables as JSON.")] = False,
) -> None:
    """List the tables of the Glue catalog (what SQL can name), with their format and location."""
    from sales_ops.catalog import glue

    with friendly_errors():
        cfg = running(settings())
        found = [_table_summary(t) for t in glue.list_tables(cfg)]
    if as_json:
        print(json.dumps(found))
        return
    table = Table("table", "format", "columns", "partition keys", "location")
    for t in found:
        row = [t["name"], t["format"], str(len(t["columns"])), ", ".join(t["partition_keys"]), t["location"]]
        table.add_row(*[_cell(v) for v in row])
    console.print(table)
    console.print(f"{len(found)} table(s) in database {cfg.database}", markup=False)


@app.command("describe")
def describe_cmd(
    name: Annotated[str, typer.Argument(help="A table, as `tables` lists it (optionally database.table).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Columns and types of a table, its partition keys, format and location."""
    from sales_ops.catalog import glue

    with friendly_errors():
        cfg = running(settings())
        database, _, table_name = name.lower().rpartition(".")
        found = glue.get_table(cfg, table_name, database or cfg.database)
    if found is None:
        raise fail(f"no table {name!r} in database {database or cfg.database}; see `sales-ops tables`")
    summary = _table_summary(found)
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("column", "type", "partition key")
    for column, type_ in summary["columns"]:
        table.add_row(_cell(column), _cell(type_), "")
    for key, type_ in summary["partition_key_types"]:
        table.add_row(_cell(key), _cell(type_), "yes")
    console.print(table)
    console.print(f"{summary['format']} at {summary['location']}", markup=False)


def _table_summary(table: dict) -> dict:
    from sales_ops.catalog import glue

    sd = table.get("StorageDescriptor", {})
    serde = (sd.get("SerdeInfo", {}).get("SerializationLibrary") or "").lower()
    keys = glue.partition_keys(table)
    return {
        "name": table["Name"],
        "format": "parquet" if "parquet" in serde else "json" if "json" in serde else serde or "?",
        "location": sd.get("Location", ""),
        "columns": glue.table_columns(table),
        "partition_keys": [k for k, _ in keys],
        "partition_key_types": keys,
    }


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
    from sales_ops.quality import run_checks

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
            console.print(mark + Text(_printable(f" {o.name}: {o.summary}")))
    if not all(o.passed for o in outcomes):
        raise typer.Exit(1)


# --- backfill --------------------------------------------------------------------------------
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
    from sales_ops.backfill import ExportError, apply_export, backfill, start_export
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
                    from sales_ops.backfill.export import wait_export

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
            f"read {_size(report.bytes_read)}, wrote {_size(report.bytes_written)} "
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


# --- dashboard -------------------------------------------------------------------------------
@app.command("dashboard")
def dashboard(
    port: Annotated[int, typer.Option(help="Port on the loopback interface.", min=1, max=65535)] = 8050,
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
