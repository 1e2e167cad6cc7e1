"""Benchmark the cost of the emulator's write-ahead journal: DynamoDB writes/s with and without it.

For each mode an emulator of its own (free port, temp state dir) is started, the resources are
provisioned, and the mock load (`sales-ops load`: BatchWriteItem of 25, each change streamed)
writes --orders orders as fast as it can, with --threads writer threads. Modes, interleaved over
--rounds rounds so that the machine's background noise hits each alike; the median is reported:
- snapshots only (no journal: what the emulator did before, loses writes on SIGKILL),
- journal without fsync (the cost of the journal itself),
- journal with group-commit fdatasync (the default).
Target (issue 11): the default at most 20 % slower than snapshots only.

Usage: python bench/bench_journal.py [--orders 400] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sales_ops.load.shop import run_load
from sales_ops.local.provision import provision
from sales_ops.local.supervisor import port_open
from sales_ops.settings import Settings
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "snapshots only": ["--no-journal"],
    "journal, no fsync": ["--no-fsync"],
    "journal + fsync (default)": [],
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(flags: list[str], orders: int, threads: int) -> tuple[float, float]:
    """changes/s of one load against a fresh emulator started with `flags`, and its CPU ms a change.

    On a shared machine the rate swings with the neighbours' load; the emulator's own CPU time per
    change does much less, so both are reported.
    """
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "sales_ops.local.emulator", "--port", str(port), "--state-dir", tmp]
        proc = subprocess.Popen(
            [*cmd, "--snapshot-every", "3600", *flags],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not port_open(port):
                if proc.poll() is not None:
                    raise SystemExit("the emulator did not start")
                time.sleep(0.1)
            env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": tmp}
            settings = Settings.from_env("local", env=env)
            provision(settings)
            cpu_before = cpu_seconds(proc.pid)
            summary = run_load(settings, orders, rate=0, seed=5, threads=threads)
            cpu_ms = 1000 * (cpu_seconds(proc.pid) - cpu_before) / summary.changes
            return summary.changes / summary.seconds, cpu_ms
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, flags in MODES.items():
            rate, cpu_ms = one_round(flags, args.orders, args.threads)
            rates[mode].append(rate)
            cpu[mode].append(cpu_ms)
    base_rate = statistics.median(rates["snapshots only"])
    base_cpu = statistics.median(cpu["snapshots only"])
    print(f"DynamoDB writes/s, {args.orders} orders, {args.threads} writer threads, median of {args.rounds}")
    print(
        f"{'mode':28} {'writes/s':>9} {'vs base':>8} {'CPU ms/write':>13} {'vs base':>8}   rounds (writes/s)"
    )
    for mode in MODES:
        rate, cpu_ms = statistics.median(rates[mode]), statistics.median(cpu[mode])
        rounds = ", ".join(f"{v:.0f}" for v in rates[mode])
        print(
            f"{mode:28} {rate:9.0f} {100 * (rate / base_rate - 1):+7.1f}% {cpu_ms:13.2f} "
            f"{100 * (cpu_ms / base_cpu - 1):+7.1f}%   {rounds}"
        )


if __name__ == "__main__":
    main()
