"""`make run`: the embedded AWS, a mock load that keeps going, and Dagster (code server, daemon,
webserver behind the local guard), on 127.0.0.1.

    python -m sales_ops.local.devserver [--port 3000] [--dashboard-port 8050] [--code-port 3001]
                                        [--orders 300] [--rate 10] [--no-load]

The load: a first burst of `--orders` orders (at 50 changes/s) so that every panel has data at
once, and a gentle continuous load beside it, `--rate` changes/s (10 by default: a few orders a
second, each living its lifecycle over a minute or so), so that the dashboard and the Dagster UI
keep moving. `--no-load` starts neither.

DAGSTER_HOME is `<state dir>/dagster/`, `.sales-ops/dagster/` by default (runs, schedules and
sensor cursors survive restarts). It supervises everything it started: a dead emulator or
stand-in workers process, code server, daemon, webserver, dashboard or live load is started again
within a second and counted in `sales-ops local status` (issue 24, bug 9: under `dg dev` a killed
daemon took everything down). Their logs are under `<state dir>/logs/`. Ctrl-C (or SIGTERM) stops
Dagster and everything it started, the loads, and then the embedded AWS (which snapshots its
state) unless it was already running before.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sales_ops.local import supervisor
from sales_ops.settings import LOCAL_HOST, PROJECT_ROOT, Settings

# The instance config shipped in the repo (pools, run retries and monitoring, freshness), the
# same file the aws deployment uses.
DAGSTER_YAML = PROJECT_ROOT / "dagster" / "dagster.yaml"


def dagster_home(settings: Settings) -> Path:
    """`<state dir>/dagster` with the repo's dagster/dagster.yaml in it and its storage created.

    The storage is created here, once, before any Dagster process starts: processes opening a fresh
    SQLite home at the same moment each stamp its schema version, which leaves two alembic heads
    and every later open fails ("more than one head present"; seen in CI with a daemon, a run and
    a reader starting together).
    """
    import dagster as dg

    home = settings.state_path("dagster", "dagster.yaml").parent
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return home


def cancel_orphaned_runs(home: Path) -> int:
    """Mark runs left in flight by an earlier session as canceled; returns how many.

    A run cut off by Ctrl-C (or a crash) would stay STARTED until run monitoring noticed, holding
    its writer-pool slot and keeping the automation from requesting its assets meanwhile.
    """
    import dagster as dg

    in_flight = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(statuses=in_flight))
        for run in runs:
            instance.report_run_canceled(run, "the dev server stopped while this run was in flight")
    return len(runs)


def fail_dead_runs(home: Path) -> int:
    """Mark STARTED runs whose run worker process has died (e.g. SIGKILL) as failed; returns how many.

    The default run launcher cannot check a run worker's health (dagster's run monitoring needs a
    launcher that supports it), so such a run would stay STARTED and hold its writer-tag slot for
    ever. The run worker's pid is the one on its RUN_START event; this runs on the same host.
    """
    import dagster as dg
    from sales_ops.local.supervisor import _alive

    failed = 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
            pids = {e.dagster_event.pid for e in starts if e.dagster_event and e.dagster_event.pid}
            if pids and not any(_alive(pid) for pid in pids):
                instance.report_run_failed(run, "the run worker process died (killed or crashed)")
                failed += 1
    return failed


def child_env(settings: Settings, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        **settings.to_env(),
        "PYTHONUNBUFFERED": "1",
    }


BURST_RATE = 50.0  # changes/s of the first burst


def start_load(
    settings: Settings, env: dict[str, str], orders: int, rate: float, continuous: bool = False
) -> subprocess.Popen:
    log = load_log(settings).open("ab")
    cmd = [sys.executable, "-m", "sales_ops.cli", "load", "--orders", str(orders), "--rate", str(rate)]
    return subprocess.Popen(
        cmd + (["--continuous"] if continuous else []),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # our Ctrl-C handling stops it, not the terminal's
    )


def load_log(settings: Settings) -> Path:
    return settings.state_path("logs", "load.log")


def workspace(home: Path, code_port: int) -> Path:
    """The webserver's and the daemon's workspace: the one code server `make run` supervises."""
    path = home / "workspace.yaml"
    path.write_text(
        "load_from:\n  - grpc_server:\n"
        f"      host: {LOCAL_HOST}\n      port: {code_port}\n      location_name: {LOCATION}\n"
    )
    return path


LOCATION = "sales_ops"


def _spawn(
    settings: Settings, service: supervisor.Service, env: dict[str, str], args: list[str]
) -> subprocess.Popen:
    # Own session each: a Ctrl-C in the terminal reaches only us, and we stop them in order.
    log = service.logfile(settings).open("ab")
    cmd = [sys.executable, "-m", service.module, *args]
    return subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


@dataclass
class Child:
    """A process `make run` keeps running: started again (and counted in `local status`) when it dies."""

    service: supervisor.Service
    start: Callable[[], subprocess.Popen]
    stop_timeout: float
    proc: subprocess.Popen | None = None

    def launch(self, settings: Settings) -> None:
        self.proc = self.start()
        self.service.pidfile(settings).write_text(str(self.proc.pid))

    def restart_if_dead(self, settings: Settings) -> bool:
        if self.proc is None or self.proc.poll() is None:
            return False
        print(f"{self.service.name} exited ({self.proc.returncode}); restarting it")
        supervisor.count_restart(self.service.name, settings)
        self.launch(settings)
        return True


def dev_children(
    settings: Settings, env: dict[str, str], port: int, dashboard_port: int, code_port: int, rate: float
) -> list[Child]:
    """Code server, daemon, webserver (behind the local guard), dashboard, and the live load, in
    start order. Replaces `dg dev`, which exits, and takes everything down, when one of its
    processes dies."""
    ws = str(workspace(Path(env["DAGSTER_HOME"]), code_port))
    grpc = ["api", "grpc", "-h", LOCAL_HOST, "-p", str(code_port), "-m", "sales_ops.definitions"]
    grpc += ["-a", "defs", "--location-name", LOCATION]
    web = ["-w", ws, "-h", LOCAL_HOST, "-p", str(port)]
    children = [
        Child(supervisor.CODE_SERVER, lambda: _spawn(settings, supervisor.CODE_SERVER, env, grpc), 10.0),
        Child(
            supervisor.DAGSTER_DAEMON,
            lambda: _spawn(settings, supervisor.DAGSTER_DAEMON, env, ["run", "-w", ws]),
            30.0,
        ),
        Child(supervisor.WEBSERVER, lambda: _spawn(settings, supervisor.WEBSERVER, env, web), 10.0),
        Child(supervisor.DASHBOARD, lambda: start_dashboard(env, dashboard_port), 10.0),
    ]
    if rate:
        children.append(
            Child(supervisor.LOAD, lambda: start_load(settings, env, 0, rate, continuous=True), 5.0)
        )
    return children


def start_dashboard(env: dict[str, str], port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sales_ops.cli", "dashboard", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process, wait, then kill its whole group (run workers, stragglers)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def supervise(settings: Settings) -> None:
    """Start again the emulator or workers if either died (the journal brings the state back)."""
    dead = supervisor.dead(settings)
    if not dead:
        return
    print(f"{', '.join(dead)} died; restarting")
    try:
        supervisor.up(settings, log=lambda message: print(f"  {message}"))
    except supervisor.EmulatorError as exc:  # tried again on the next round
        print(f"  restart failed: {exc}", file=sys.stderr)


class Stop(Exception):
    """SIGINT/SIGTERM received."""


def _raise_stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def run(
    port: int, orders: int, rate: float, dashboard_port: int = 8050, load: bool = True, code_port: int = 0
) -> int:
    settings = Settings.from_env("local")
    code_port = code_port or port + 1
    for taken, option in ((port, "--port"), (dashboard_port, "--dashboard-port"), (code_port, "--code-port")):
        if supervisor.port_open(taken):
            print(f"port {taken} on {LOCAL_HOST} is taken; pass {option}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    burst: subprocess.Popen | None = None
    children: list[Child] = []
    # A stack that was already up (`sales-ops local up`) is left running; one we start, we stop.
    owns_stack = not any(supervisor.processes(settings).values())
    try:
        supervisor.up(settings)
        home = dagster_home(settings)
        if cancelled := cancel_orphaned_runs(home):
            print(f"{cancelled} run(s) cut off by the previous session marked canceled")
        env = child_env(settings, home)
        if load and orders:  # a one-off burst: it ends by itself, so it is not restarted
            burst = start_load(settings, env, orders, BURST_RATE)
            print(f"first load: {orders} orders at {BURST_RATE:g} changes/s (log {load_log(settings)})")
        children = dev_children(settings, env, port, dashboard_port, code_port, rate if load else 0)
        for child in children:
            child.launch(settings)
        if load and rate:
            print(f"live load: orders living their lifecycles at {rate:g} changes/s (--rate, --no-load)")
        print(f"Live sales dashboard on http://{LOCAL_HOST}:{dashboard_port}")
        print(
            f"Dagster UI on http://{LOCAL_HOST}:{port} (DAGSTER_HOME {env['DAGSTER_HOME']}, logs in "
            f"{settings.state_path('logs')}); Ctrl-C stops all"
        )
        rounds = 0
        while True:
            time.sleep(0.5)
            supervise(settings)
            for child in children:
                child.restart_if_dead(settings)
            rounds += 1
            if rounds % 10 == 0 and (failed := fail_dead_runs(home)):
                print(f"{failed} run(s) whose run worker died marked failed")
    except Stop as stop:
        print(f"\n{stop}: stopping Dagster, the load and the embedded AWS…")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(children):
            if child.proc is not None:
                stop_group(child.proc, child.stop_timeout)
            child.service.pidfile(settings).unlink(missing_ok=True)
        if burst is not None:
            stop_group(burst, 5.0)
        if children:  # started only once `home` was made
            cancel_orphaned_runs(home)
        if owns_stack:
            supervisor.down(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sales_ops.local.devserver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port on 127.0.0.1")
    parser.add_argument("--dashboard-port", type=int, default=8050, help="dashboard port on 127.0.0.1")
    parser.add_argument(
        "--code-port", type=int, default=0, help="Dagster code server port on 127.0.0.1 (default: --port + 1)"
    )
    parser.add_argument("--orders", type=int, default=300, help="orders in the first burst (0: none)")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="changes per second of the continuous load (0: none)"
    )
    parser.add_argument("--no-load", action="store_true", help="no load at all (neither burst nor live)")
    args = parser.parse_args(argv)
    if args.rate < 0 or args.orders < 0:
        parser.error("--rate and --orders must be ≥ 0")
    return run(
        args.port,
        args.orders,
        args.rate,
        args.dashboard_port,
        load=not args.no_load,
        code_port=args.code_port,
    )


if __name__ == "__main__":
    sys.exit(main())
