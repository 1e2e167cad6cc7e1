"""`sales-ops local up|down|status`: the emulator and the stand-in workers as background processes.

Each runs detached with a pidfile and a log under the state dir. `up` is idempotent: it starts what
is not running (so after a crash it restarts just the dead worker) and provisions the resources.
A start over a stale pidfile is a restart after a crash; `run/restarts.json` counts them for
`local status`. The devserver (`make run`) calls `up` whenever a process is found dead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sales_ops.local.checkpoint import read_json, write_json_atomic, write_text_atomic
from sales_ops.local.provision import provision
from sales_ops.settings import LOCAL_HOST, Settings


class EmulatorError(RuntimeError):
    """The embedded AWS could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class Service:
    name: str
    module: str

    def pidfile(self, settings: Settings) -> Path:
        return settings.state_path("run", f"{self.name}.pid")

    def logfile(self, settings: Settings) -> Path:
        return settings.state_path("logs", f"{self.name}.log")

    def pid(self, settings: Settings) -> int | None:
        """The pid from the pidfile if that process is alive and is this service of this state dir.

        A stale pidfile (after a crash or a reboot) can name a pid since reused by an unrelated
        process: it must never be called "running", nor be killed by `down`.
        """
        try:
            pid = int(self.pidfile(settings).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) and self.is_ours(pid, settings) else None

    def is_ours(self, pid: int, settings: Settings) -> bool:
        """The process runs `python -m <this module>` for this state dir (checked on its command line
        and, for the workers, which take the state dir from the environment, its environment)."""
        args = _cmdline(pid)
        if args is None or "-m" not in args or self.module not in args:
            return False
        if "--state-dir" in args:
            at = args.index("--state-dir") + 1
            return at < len(args) and Path(args[at]).resolve() == settings.state_dir.resolve()
        env = _environ(pid)
        if env is None:
            return True
        return (
            "SALES_OPS_STATE_DIR" in env
            and Path(env["SALES_OPS_STATE_DIR"]).resolve() == settings.state_dir.resolve()
        )


EMULATOR = Service("emulator", "sales_ops.local.emulator")
WORKERS = Service("workers", "sales_ops.local.workers")
SERVICES = (EMULATOR, WORKERS)

# What `make run` (sales_ops/local/devserver.py) starts beside them, each restarted when it dies;
# shown by `local status` while their pidfiles exist (the devserver removes them when it stops).
CODE_SERVER = Service("code-server", "dagster")  # `python -m dagster api grpc …`
DAGSTER_DAEMON = Service("dagster-daemon", "dagster._daemon")
WEBSERVER = Service("webserver", "sales_ops.local.webserver")
DASHBOARD = Service("dashboard", "sales_ops.cli")
LOAD = Service("load", "sales_ops.cli")  # the continuous load
DEV_SERVICES = (CODE_SERVER, DAGSTER_DAEMON, WEBSERVER, DASHBOARD, LOAD)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not yet reaped) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> list[str] | None:
    """The process's arguments (None when it cannot be read: gone, or another user's)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except FileNotFoundError:
        if not Path("/proc/self").exists():  # no procfs (macOS): ask ps
            found = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
            return found.stdout.split() or None
        return None
    except OSError:
        return None


def _environ(pid: int) -> dict[str, str] | None:
    """The process's environment where procfs shows it, else None (then not checked)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            pairs = [e.decode(errors="replace").partition("=") for e in fh.read().split(b"\0") if e]
    except OSError:
        return None
    return {k: v for k, _, v in pairs}


def port_open(port: int, host: str = LOCAL_HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _child_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "PYTHONUNBUFFERED": "1",
    }


def restarts_path(settings: Settings) -> Path:
    return settings.state_path("run", "restarts.json")


def restarts(settings: Settings) -> dict[str, dict]:
    """Per service: how many times it was found dead and started again, and when last."""
    return read_json(restarts_path(settings), {}) or {}


def count_restart(name: str, settings: Settings) -> None:
    counts = restarts(settings)
    entry = counts.setdefault(name, {"restarts": 0})
    entry["restarts"] += 1
    entry["last_at"] = time.time()
    write_json_atomic(restarts_path(settings), counts)


def _spawn(service: Service, settings: Settings, *args: str) -> subprocess.Popen:
    # A pidfile whose process is gone means it died (`down` removes pidfiles): this is a restart.
    if service.pidfile(settings).exists():
        count_restart(service.name, settings)
    log = service.logfile(settings).open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", service.module, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_child_env(settings),
        start_new_session=True,  # survives the CLI and its Ctrl-C
    )
    write_text_atomic(service.pidfile(settings), str(proc.pid))
    return proc


def wait_until_ready(settings: Settings, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Until the emulator answers. `proc`, when we just started it, is asked whether it exited: the
    pidfile check (`EMULATOR.pid`) once saw a live, just-started emulator as gone under load, and
    the stack then failed to start and left that emulator running with no pidfile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = proc.poll() is not None if proc is not None else EMULATOR.pid(settings) is None
        if exited:
            code = f" (exit code {proc.returncode})" if proc is not None else ""
            logfile = EMULATOR.logfile(settings)
            raise EmulatorError(f"the emulator exited during start-up{code}; see {logfile}")
        if port_open(settings.port):
            try:
                settings.client("s3").list_buckets()
                return
            except Exception:
                pass
        time.sleep(0.2)
    raise EmulatorError(f"the emulator did not answer on {settings.endpoint_url} within {timeout:.0f}s")


def up(settings: Settings, log: Callable[[str], None] = print) -> None:
    """Start whatever is not running, provision the resources, and return when all is ready."""
    if EMULATOR.pid(settings) is None:
        # Just after a crash the dead emulator's socket may linger while the process exits.
        deadline = time.monotonic() + 5.0
        while (
            EMULATOR.pidfile(settings).exists() and port_open(settings.port) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        if port_open(settings.port):
            raise EmulatorError(
                f"port {settings.port} on {LOCAL_HOST} is taken by another process; stop it or set "
                "SALES_OPS_ENDPOINT to another port"
            )
        where = ("--port", str(settings.port), "--state-dir", str(settings.state_dir))
        proc = _spawn(EMULATOR, settings, *where)
        log(f"emulator started (pid {proc.pid}) on {settings.endpoint_url}, state in {settings.state_dir}")
    else:
        proc = None
        log(f"emulator already running (pid {EMULATOR.pid(settings)})")
    wait_until_ready(settings, proc=proc)
    provision(settings)
    if WORKERS.pid(settings) is None:
        pid = _spawn(WORKERS, settings).pid
        log(f"stand-ins started (pid {pid}): pipe, firehose; log {WORKERS.logfile(settings)}")
    else:
        log(f"stand-ins already running (pid {WORKERS.pid(settings)})")


def stop_service(service: Service, settings: Settings, timeout: float) -> bool:
    """SIGTERM, wait, then SIGKILL; returns True if something was running."""
    pid = service.pid(settings)
    if pid is None:
        service.pidfile(settings).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    service.pidfile(settings).unlink(missing_ok=True)
    return True


def down(settings: Settings, log: Callable[[str], None] = print) -> None:
    """Stop the workers first (they flush their buffers), then the emulator (it snapshots)."""
    for service, timeout in ((WORKERS, 30.0), (EMULATOR, 120.0)):
        if stop_service(service, settings, timeout):
            log(f"{service.name} stopped")
        else:
            log(f"{service.name} was not running")


def dead(settings: Settings) -> list[str]:
    """Services that were started (pidfile present) and whose process is gone."""
    return [s.name for s in SERVICES if s.pidfile(settings).exists() and s.pid(settings) is None]


def processes(settings: Settings) -> dict[str, int | None]:
    """The stack's processes, and those of `make run` while it runs."""
    started = [s for s in DEV_SERVICES if s.pidfile(settings).exists()]
    return {service.name: service.pid(settings) for service in (*SERVICES, *started)}
