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
import signal
import socket
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

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "snapshots only": ["--no-journal"],
    "journal, no fsync": ["--no-fsync"],
    "journal + fsync (default)": [],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_round(flags: list[str], orders: int, threads: int) -> float:
    """changes/s of one load against a fresh emulator started with `flags`."""
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
            summary = run_load(settings, orders, rate=0, seed=5, threads=threads)
            return (summary.inserts + summary.updates + summary.deletes) / summary.seconds
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
    for _ in range(args.rounds):
        for mode, flags in MODES.items():
            rates[mode].append(one_round(flags, args.orders, args.threads))
    base = statistics.median(rates["snapshots only"])
    print(f"DynamoDB writes/s, {args.orders} orders, {args.threads} writer threads, median of {args.rounds}")
    print(f"{'mode':28} {'writes/s':>9} {'vs snapshots only':>18}   rounds")
    for mode, values in rates.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{mode:28} {median:9.0f} {100 * (median / base - 1):+17.1f}%   {rounds}")


if __name__ == "__main__":
    main()
