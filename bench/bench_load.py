"""`sales-ops load` on a huge order count: memory stays flat, writes start at once, Ctrl-C stops it.

The load used to build its whole plan first (480 MB after 11 s for --orders 50000000, nothing
written). This runs the real CLI against the project's emulator, samples the process's RSS every
second, then sends SIGINT and times how long it takes to stop.

    .venv/bin/python bench/bench_load.py [--orders 50000000] [--rate 500] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_compaction import emulator

from sales_ops.local.provision import provision


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def items(settings) -> int:
    pages = settings.client("dynamodb").get_paginator("scan")
    return sum(p["Count"] for p in pages.paginate(TableName=settings.table, Select="COUNT"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=50_000_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    with emulator() as settings:
        provision(settings)
        env = {
            **os.environ,
            "SALES_OPS_ENDPOINT": settings.endpoint_url or "",
            "SALES_OPS_STATE_DIR": str(settings.state_dir),
        }
        cmd = [
            sys.executable,
            "-m",
            "sales_ops.cli",
            "load",
            "--orders",
            str(args.orders),
            "--rate",
            str(args.rate),
        ]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first_write, peak = None, 0.0
        while time.monotonic() - started < args.seconds and proc.poll() is None:
            time.sleep(1)
            peak = max(peak, rss_mib(proc.pid))
            if first_write is None and items(settings):
                first_write = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        stopped = time.monotonic() - sent
    print(f"load --orders {args.orders:,} --rate {args.rate:g}, {args.seconds:g} s then SIGINT")
    print(f"first change in DynamoDB after {first_write:.1f} s" if first_write else "nothing written")
    print(f"peak RSS {peak:.0f} MiB; stopped {stopped:.1f} s after SIGINT, exit {proc.returncode}")
    print(out.strip().splitlines()[-1] if out.strip() else "(no summary printed)")


if __name__ == "__main__":
    main()
