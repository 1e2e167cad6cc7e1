"""A newcomer's first `make run`: fresh clone → Dagster UI and a dashboard with data, timed.

Clones the committed HEAD into a temporary directory (nothing of this checkout's .venv or state),
runs `make run` there as a newcomer would, and prints when each milestone was reached:
- installed: the project's venv is complete (`.venv/.installed`);
- ui: the Dagster UI answers on 127.0.0.1:3000;
- dashboard: the dashboard's /api/metrics answers with a total of at least one order.
Then stops `make run` with SIGTERM (its own shutdown path) and removes the clone.

The package cache is whatever this machine has (warm after any earlier install: issue 22's target
is "≤ 60 s with a warm package cache"). The default ports must be free.

    .venv/bin/python bench/bench_first_run.py [--timeout 300] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI_PORT, DASHBOARD_PORT = 3000, 8050


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def dashboard_orders() -> int:
    """Orders in the dashboard's total (0 while it has none or does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}/api/metrics", timeout=5) as answer:
            total = json.load(answer)["panels"]["total"]
    except (OSError, ValueError, KeyError):
        return 0
    return int(total["data"]["orders"]) if total.get("status") == "ok" else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the clone (and its log) afterwards")
    args = parser.parse_args()
    taken = [p for p in (UI_PORT, DASHBOARD_PORT) if port_open(p)]
    if taken:
        print(f"ports {taken} are taken: stop what runs there first", file=sys.stderr)
        return 2
    clone = Path(tempfile.mkdtemp(prefix="first-run-")) / "sales-ops"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    log = (clone.parent / "make-run.log").open("wb")
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "SALES_OPS_"))}
    proc = subprocess.Popen(
        ["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    reached: dict[str, float] = {}
    try:
        while len(reached) < 3:
            elapsed = time.monotonic() - started
            if proc.poll() is not None:
                print(f"make run exited ({proc.returncode}); log: {log.name}", file=sys.stderr)
                return 1
            if elapsed > args.timeout:
                print(f"timed out after {args.timeout:.0f} s; reached {reached}", file=sys.stderr)
                return 1
            if "installed" not in reached and (clone / ".venv" / ".installed").exists():
                reached["installed"] = elapsed
            if "ui" not in reached and port_open(UI_PORT):
                reached["ui"] = elapsed
            if "dashboard" not in reached and dashboard_orders() > 0:
                reached["dashboard"] = elapsed
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if not args.keep:
            shutil.rmtree(clone.parent, ignore_errors=True)
    print(f"fresh clone → make run on {os.cpu_count()} CPUs (warm package cache):")
    for milestone in ("installed", "ui", "dashboard"):
        print(f"  {milestone:10} {reached[milestone]:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
