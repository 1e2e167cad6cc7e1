"""The one test harness: free ports, the emulator launcher, per-test spaces, the Lambda handler, and
the guard that keeps the fast tier (`pytest -m "not slow"`) free of emulators.

tests/conftest.py builds its fixtures from these; tests and bench/ import them from here.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pytest

from sales_ops.local import firehose, supervisor
from sales_ops.settings import PROJECT_ROOT, Settings

ROOT = PROJECT_ROOT

# Fixtures that start or share an emulator: a test using any of them, directly or through another
# fixture, is `slow` (tests/conftest.py marks it). Tests that start processes themselves carry an
# explicit mark; the guard below fails any that were missed.
# (`moto_clients` is test_infra's in-process moto server, for the CloudFormation deploy tests.)
EMULATOR_FIXTURES = frozenset({"local_stack", "fresh_stack", "space", "moto_clients"})


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (never the defaults 4566, 3000, 8050)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Tests wait for delivery polling every 0.1 s (`load --wait` polls every 0.5 s): Firehose's
# stand-in flushes each second, so a wait ends within a tenth of a second of it.
DELIVERY_POLL_S = 0.1

# --- how long to wait for a start, under load ---------------------------------------------------
START_TIMEOUT_ENV = "SALES_OPS_TEST_START_TIMEOUT"  # seconds; overrides the load-aware figure
MAX_START_TIMEOUT = 600.0


def start_timeout(base: float, load: float | None = None, cores: int | None = None) -> float:
    """`base` seconds (enough on a quiet machine) stretched by the load: on 2 cores at load 20 a
    process starts ~10 times slower (moto's import alone takes a minute). Capped at 10 minutes."""
    if override := os.environ.get(START_TIMEOUT_ENV):
        return float(override)
    load = os.getloadavg()[0] if load is None else load
    cores = cores or os.cpu_count() or 1
    return min(MAX_START_TIMEOUT, base * max(1.0, load / cores))


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the emulator and servers ---------------------------------------------------------------------
def stack_settings(state_dir: Path, port: int | None = None) -> Settings:
    """Local settings for a private emulator on `port` (a free one by default) with its own state."""
    port = port or free_port()
    return Settings.from_env(
        "local",
        env={"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": str(state_dir)},
    )


def stack_env(settings: Settings) -> dict[str, str]:
    """Environment for a `sales-ops` (or Dagster) subprocess that talks to this stack."""
    return {**os.environ, **settings.to_env()}


def start_stack(state_dir: Path, base_timeout: float = 90.0) -> Settings:
    """The whole local pipeline (emulator and stand-ins) up on a free port, or one clear failure.

    `supervisor.up` is idempotent, so a slow start (the emulator alive but not answering yet, or
    provisioning timing out) is waited for again, up to `start_timeout(base_timeout)`, re-read as
    the load changes. A port taken meanwhile (another worker's free_port race) gets a new port.
    Anything else, or running out of time, fails with how long it waited and what it saw: a
    session-scoped fixture then gives every dependent test that one line, not a traceback each.
    """
    started, attempts = time.monotonic(), 0
    while True:
        settings = stack_settings(state_dir)
        attempts += 1
        while True:
            try:
                supervisor.up(settings, log=lambda *_: None)
                return settings
            except Exception as exc:  # EmulatorError, or a botocore timeout while provisioning
                seen = f"{type(exc).__name__}: {exc}"
            waited, limit = time.monotonic() - started, start_timeout(base_timeout)
            if supervisor.EMULATOR.pid(settings) is None or waited >= limit:
                break
        port_race = supervisor.EMULATOR.pid(settings) is None and supervisor.port_open(settings.port)
        supervisor.down(settings, log=lambda *_: None)
        if port_race and attempts < 3 and waited < limit:
            continue
        pytest.fail(
            f"the local stack did not start: waited {waited:.0f} s of {limit:.0f} s "
            f"({base_timeout:.0f} s stretched by the {_load()}; {START_TIMEOUT_ENV} overrides); "
            f"saw {seen}\nemulator log ({supervisor.EMULATOR.logfile(settings)}):\n"
            f"{_tail(supervisor.EMULATOR.logfile(settings))}",
            pytrace=False,
        )


@contextmanager
def running_stack(state_dir: Path) -> Iterator[Settings]:
    """The whole local pipeline (emulator and stand-ins) on a free port, stopped afterwards."""
    settings = start_stack(state_dir)
    try:
        yield settings
    finally:
        supervisor.down(settings, log=lambda *_: None)


@contextmanager
def running_server(
    name: str, cmd: list[str], env: dict[str, str], probe_url: str, log: Path, timeout: float = 90
) -> Iterator[subprocess.Popen]:
    """Run a server as a user starts it; yield once `probe_url` answers; stop it afterwards.

    Fails the test with the tail of the server's log if it exits or does not answer within
    `start_timeout(timeout)` (`timeout` on a quiet machine, more under load).
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        _wait_answering(name, proc, probe_url, log, timeout)
        yield proc
    finally:
        stop_process(proc, 20)


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, up to `timeout` seconds for a clean exit, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_answering(name: str, proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < start_timeout(timeout):
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    waited = time.monotonic() - started
    pytest.fail(
        f"{name} did not answer {url}: waited {waited:.0f} s ({timeout:.0f} s stretched by the "
        f"{_load()}):\n{log.read_text()[-3000:]}"
    )


# --- the CLI in this process ---------------------------------------------------------------------
@dataclass
class CliOutcome:
    """What a `sales-ops` process reports: its exit code, stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


class _LastResort(logging.Handler):
    """What a process that sets up no logging (the CLI) prints of a log record: WARNING and above,
    the message alone, on the stderr of the moment (Python's `logging.lastResort`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> CliOutcome:
    """`sales-ops ARGS` run in this process through click's runner (same app, same exit codes,
    stdout and stderr), with `env` as the whole environment, as a process would get it; a second
    of interpreter start-up and imports less per call than `python -m sales_ops.cli`.

    A log record of WARNING or above lands on stderr, as in a process (pytest's own handler would
    otherwise take it), and the consoles are as wide as `env`'s COLUMNS says (a process's consoles
    read it when they are made; these were made at import, under pytest-xdist with COLUMNS=80).
    An exception the CLI lets escape (the traceback a user would see) is raised: the test fails
    with it. Start-up, signals and a process's own cwd need a real process.
    """
    from typer.testing import CliRunner

    from sales_ops import cli_common
    from sales_ops.cli import app

    unset = dict.fromkeys(os.environ, None) if env is not None else {}
    columns = (os.environ if env is None else env).get("COLUMNS", "")
    consoles = [(c, c._width) for c in (cli_common.console, cli_common.err)]
    handler, root = _LastResort(), logging.getLogger()
    root.addHandler(handler)
    try:
        for console, _ in consoles:
            console._width = int(columns) if columns.isdigit() else None  # as Console() sets it
        result = CliRunner().invoke(app, list(args), env={**unset, **(env or {})}, catch_exceptions=True)
    finally:
        root.removeHandler(handler)
        for console, width in consoles:
            console._width = width
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliOutcome(result.exit_code, result.stdout, result.stderr)


# --- per-test spaces on a shared emulator ---------------------------------------------------------
def own_space(stack: Settings, state_dir: Path, label: str) -> Settings:
    """A bucket and Glue database of their own on a shared emulator (isolated from other tests)."""
    tag = f"{label}-{uuid.uuid4().hex[:8]}"
    settings = replace(stack, bucket=tag, database=tag.replace("-", "_"), state_dir=state_dir)
    settings.client("s3").create_bucket(Bucket=settings.bucket)
    settings.client("glue").create_database(DatabaseInput={"Name": settings.database})
    return settings


def put_orders_table(settings: Settings, items: Iterable[dict]) -> None:
    """A DynamoDB table named `settings.table` holding these items (no stream: nothing delivers
    it): the truth a reconciliation compares the lake to."""
    ddb = settings.client("dynamodb")
    ddb.create_table(
        TableName=settings.table,
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    puts = [{"PutRequest": {"Item": item}} for item in items]
    for i in range(0, len(puts), 25):  # BatchWriteItem takes at most 25
        ddb.batch_write_item(RequestItems={settings.table: puts[i : i + 25]})


def drop_bucket(settings: Settings) -> None:
    s3 = settings.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=settings.bucket)


# --- the Lambda handler ---------------------------------------------------------------------------
def load_handler(block_orjson: bool = False) -> ModuleType:
    """The real handler, loaded as the Firehose stand-in loads it (`sales_ops.local.firehose`).

    With `block_orjson`, as on a Lambda runtime without orjson (deployed with `--no-orjson`): the
    handler's `import orjson` fails while it loads, so it runs on the standard library alone.
    """
    if not block_orjson:
        return firehose.load_handler()
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` raise ImportError
    try:
        return firehose.load_handler()
    finally:
        if saved is None:
            del sys.modules["orjson"]
        else:
            sys.modules["orjson"] = saved


# --- the fast tier's guard ------------------------------------------------------------------------
class EmulatorInFastTest(RuntimeError):
    """A test outside the `slow` tier tried to start the emulator or a server."""


# Python modules that are the emulator, its stand-ins, or a server the slow tests start.
_SERVER_MODULES = {s.module for s in supervisor.SERVICES} | {"dagster_webserver", "dagster_dev"}
_SERVER_PROGRAMS = {"dagster-webserver", "dagster-daemon", "run_local.sh"}
_guard = {"active": False}


def server_launched_by(args: str | bytes | Sequence[object]) -> str | None:
    """What emulator or server this command line starts, or None (`--help` starts nothing)."""
    words = shlex.split(os.fsdecode(args)) if isinstance(args, str | bytes) else list(args)
    names = [Path(os.fsdecode(w)).name for w in words]  # type: ignore[arg-type]  # str, bytes or PathLike
    if "--help" in names:
        return None
    for i, name in enumerate(names):
        if name == "-m" and i + 1 < len(names) and names[i + 1] in _SERVER_MODULES:
            return names[i + 1]
        if name in _SERVER_PROGRAMS:
            return name
        if names[i : i + 2] == ["dagster", "dev"]:
            return "dagster dev"
    cli = next((i for i, n in enumerate(names) if n in ("sales-ops", "sales_ops.cli")), None)
    if cli is not None:
        rest = names[cli + 1 :]
        if "dashboard" in rest or any(rest[i : i + 2] == ["local", "up"] for i in range(len(rest))):
            return "sales-ops " + " ".join(rest)
    return None


def _audit(event: str, args: tuple) -> None:
    if event == "subprocess.Popen" and _guard["active"]:
        started = server_launched_by(args[1])
        if started:
            raise EmulatorInFastTest(
                f"a test outside the slow tier starts {started!r}: mark it @pytest.mark.slow "
                f"or use the local_stack/fresh_stack/space fixtures"
            )


sys.addaudithook(_audit)  # audit hooks cannot be removed: `_guard` switches this one on and off


@contextmanager
def no_emulator() -> Iterator[None]:
    """Fail any attempt to start the emulator, a stand-in or a server (subprocess or moto in-process)."""
    from moto.server import ThreadedMotoServer

    def refuse(self: ThreadedMotoServer) -> None:
        raise EmulatorInFastTest("a test outside the slow tier starts a moto server: mark it slow")

    start, _guard["active"] = ThreadedMotoServer.start, True
    ThreadedMotoServer.start = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        ThreadedMotoServer.start, _guard["active"] = start, False  # type: ignore[method-assign]
