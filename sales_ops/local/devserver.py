"""`make run`: the embedded AWS, a first mock load, and `dagster dev` with its daemon, on 127.0.0.1.

    python -m sales_ops.local.devserver [--port 3000] [--dashboard-port 8050] [--orders 300] [--rate 50]
                                  [--no-load]

DAGSTER_HOME is `<state dir>/dagster/`, `.sales-ops/dagster/` by default (runs, schedules and
sensor cursors survive restarts). It supervises what it started: a dead emulator, stand-in
workers process or dashboard is started again within a second. The first load runs in the
background while Dagster starts, so the raw-objects sensor picks up its data and the UI fills in
within a minute. Ctrl-C (or SIGTERM)
stops Dagster and everything it started, the load if still running, and then the embedded AWS
(which snapshots its state) unless it was already running before.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sales_ops.local import supervisor
from sales_ops.settings import LOCAL_HOST, PROJECT_ROOT, Settings

# Our instance settings: one writer job at a time (see WRITER_TAGS in defs/catalog.py), no
# telemetry or first-visit tours (this runs offline).
DAGSTER_YAML = """\
run_queue:
  max_concurrent_runs: 4
  tag_concurrency_limits:
    - key: sales_ops/writer
      limit: 1
telemetry:
  enabled: false
nux:
  enabled: false
"""


def dagster_home(settings: Settings) -> Path:
    """`<state dir>/dagster` with our dagster.yaml in it."""
    home = settings.state_path("dagster", "dagster.yaml").parent
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def cancel_orphaned_runs(home: Path) -> int:
    """Mark runs left in flight by an earlier session as canceled; returns how many.

    The default run launcher cannot tell that a run's worker is gone, so a run cut off by Ctrl-C
    (or a crash) would stay STARTED for ever, and the raw-objects sensor, which waits for the
    refresh in progress, would wait for it.
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


def start_load(settings: Settings, env: dict[str, str], orders: int, rate: float) -> subprocess.Popen:
    log = load_log(settings).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "sales_ops.cli", "load", "--orders", str(orders), "--rate", str(rate)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # our Ctrl-C handling stops it, not the terminal's
    )


def load_log(settings: Settings) -> Path:
    return settings.state_path("logs", "first-load.log")


def start_dagster(env: dict[str, str], port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml")]
    cmd += ["-h", LOCAL_HOST, "-p", str(port)]
    # Own session: a process group holding the webserver, daemon, code server and run workers,
    # so that at the end one killpg reaches any of them that did not exit on their own.
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def start_dashboard(env: dict[str, str], port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sales_ops.cli", "dashboard", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process (dagster dev treats it as Ctrl-C), wait, then kill its whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers: run workers, code servers
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


def run(port: int, orders: int, rate: float, dashboard_port: int = 8050) -> int:
    settings = Settings.from_env("local")
    for taken, option in ((port, "--port"), (dashboard_port, "--dashboard-port")):
        if supervisor.port_open(taken):
            print(f"port {taken} on {LOCAL_HOST} is taken; pass {option}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    children: list[tuple[subprocess.Popen, float]] = []
    # A stack that was already up (`sales-ops local up`) is left running; one we start, we stop.
    owns_stack = not any(supervisor.processes(settings).values())
    try:
        supervisor.up(settings)
        home = dagster_home(settings)
        if cancelled := cancel_orphaned_runs(home):
            print(f"{cancelled} run(s) cut off by the previous session marked canceled")
        env = child_env(settings, home)
        if orders:
            children.append((start_load(settings, env, orders, rate), 5.0))
            print(f"first load: {orders} orders at {rate:g} changes/s (log {load_log(settings)})")
        # Dagster last: the loop below watches the last child.
        children.append((start_dashboard(env, dashboard_port), 10.0))
        dashboard_at = len(children) - 1
        children.append((start_dagster(env, port), 30.0))
        print(f"Live sales dashboard on http://{LOCAL_HOST}:{dashboard_port}")
        print(
            f"Dagster UI on http://{LOCAL_HOST}:{port} (DAGSTER_HOME {env['DAGSTER_HOME']}); Ctrl-C stops all"
        )
        rounds = 0
        while children[-1][0].poll() is None:
            time.sleep(0.5)
            supervise(settings)
            rounds += 1
            if rounds % 10 == 0 and (failed := fail_dead_runs(home)):
                print(f"{failed} run(s) whose run worker died marked failed")
            if children[dashboard_at][0].poll() is not None:
                print(f"dashboard exited ({children[dashboard_at][0].returncode}); restarting it")
                supervisor.count_restart("dashboard", settings)
                children[dashboard_at] = (start_dashboard(env, dashboard_port), 10.0)
        return children[-1][0].returncode or 0
    except Stop as stop:
        print(f"\n{stop}: stopping Dagster, the load and the embedded AWS…")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc, timeout in reversed(children):
            stop_group(proc, timeout)
        if children:
            cancel_orphaned_runs(dagster_home(settings))
        if owns_stack:
            supervisor.down(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sales_ops.local.devserver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port on 127.0.0.1")
    parser.add_argument("--dashboard-port", type=int, default=8050, help="dashboard port on 127.0.0.1")
    parser.add_argument("--orders", type=int, default=300, help="orders in the first load (0: none)")
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second of the first load")
    parser.add_argument("--no-load", action="store_true", help="skip the first load")
    args = parser.parse_args(argv)
    return run(args.port, 0 if args.no_load else args.orders, args.rate, args.dashboard_port)


if __name__ == "__main__":
    sys.exit(main())
