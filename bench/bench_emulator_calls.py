"""The emulator's server-side cost per call for the calls the test suite makes most.

A private emulator (`python -m sales_ops.local.emulator`, journal and fsync on, snapshots held
off) is given a Glue database, a table of --partitions hourly partitions and a bucket of --keys
small objects (bench_emulator's `populate`). Then each call kind is repeated --calls times from
one boto3 client: GetTable, GetPartitions (all), BatchGetPartition (20), ListObjectsV2 of one
hour's prefix, GetObject, HeadObject, PutObject (500 bytes). Per kind it prints calls/s, p50/p95
latency and the emulator process's CPU-ms per call (/proc/<pid>/stat utime+stime, before/after).

`--compare REF` also starts an emulator from a `git archive` of REF (e.g. `main`, `HEAD~1`),
populated alike, and runs each phase on both in turn, alternating which goes first each round,
so the machine's noise hits both alike; it prints both and the ratio (this tree / REF). CPU-ms per
call is the figure to trust on a shared machine; wall figures move with the neighbours' load.

    .venv/bin/python bench/bench_emulator_calls.py [--calls 200] [--rounds 3] [--compare main]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_emulator import BUCKET, DATABASE, emulator, pct, phase, populate
from sales_ops.catalog import glue
from sales_ops.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Each kind's share of --calls: a GetPartitions of 100 partitions costs ten small calls.
KINDS = {
    "GetTable": 1.0,
    "GetPartitions": 0.25,
    "BatchGetPartition": 0.5,
    "ListObjectsV2": 1.0,
    "GetObject": 1.0,
    "HeadObject": 1.0,
    "PutObject": 1.0,
}


def calls(settings: Settings, state: dict[str, Any]) -> dict[str, Callable[[int], Any]]:
    """One call of each kind, given its index (one HTTP request each)."""
    g, s3 = settings.client("glue"), settings.client("s3")
    values, keys = state["values"], state["keys"]

    def batch_get(i: int) -> Any:
        wanted = [{"Values": list(v)} for v in values[i % 5 : i % 5 + 20]]
        return g.batch_get_partition(DatabaseName=DATABASE, TableName=glue.RAW_TABLE, PartitionsToGet=wanted)

    def key(i: int) -> str:
        return keys[i % len(keys)]

    return {
        "GetTable": lambda i: g.get_table(DatabaseName=DATABASE, Name=glue.RAW_TABLE),
        "GetPartitions": lambda i: g.get_partitions(DatabaseName=DATABASE, TableName=glue.RAW_TABLE),
        "BatchGetPartition": batch_get,
        "ListObjectsV2": lambda i: s3.list_objects_v2(Bucket=BUCKET, Prefix=key(i).rsplit("/", 1)[0] + "/"),
        "GetObject": lambda i: s3.get_object(Bucket=BUCKET, Key=key(i))["Body"].read(),
        "HeadObject": lambda i: s3.head_object(Bucket=BUCKET, Key=key(i)),
        "PutObject": lambda i: s3.put_object(Bucket=BUCKET, Key=f"bench/put-{i % 500}.json", Body=b"x" * 500),
    }


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The tree of git ref `ref` in a temp dir (for its emulator; the client code stays this tree's)."""
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        with tempfile.TemporaryFile() as fh:
            fh.write(archive)
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tar:
                tar.extractall(tmp, filter="data")
        yield Path(tmp)


class Target:
    """One running, populated emulator and what was measured against it."""

    def __init__(self, label: str, settings: Settings, pid: int, partitions: int, keys: int) -> None:
        self.label, self.pid = label, pid
        self.calls = calls(settings, populate(settings, partitions, keys))
        for call in self.calls.values():
            call(0)  # warm: the first backend app, botocore's models, the fast path's plans
        self.lat: dict[str, list[float]] = {k: [] for k in KINDS}
        self.cpu_ms: dict[str, list[float]] = {k: [] for k in KINDS}
        self.rate: dict[str, list[float]] = {k: [] for k in KINDS}

    def run(self, kind: str, n: int) -> None:
        latencies, wall, cpu = phase(self.pid, self.calls[kind], n)
        self.lat[kind] += latencies
        self.cpu_ms[kind].append(1000 * cpu / n)
        self.rate[kind].append(n / wall)

    def row(self, kind: str) -> tuple[float, float, float, float]:
        lat = self.lat[kind]
        return (
            statistics.median(self.rate[kind]),
            pct(lat, 50),
            pct(lat, 95),
            statistics.median(self.cpu_ms[kind]),
        )


def report(targets: list[Target], kinds: list[str]) -> None:
    head = f"{'call':18} {'emulator':9} {'calls/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms/call':>12}"
    print(head)
    for kind in kinds:
        rows = [t.row(kind) for t in targets]
        for t, (rate, p50, p95, cpu) in zip(targets, rows, strict=True):
            print(f"{kind:18} {t.label:9} {rate:8.0f} {p50:7.2f} {p95:7.2f} {cpu:12.2f}")
        if len(rows) == 2 and rows[1][3] > 0:
            (rate_a, p50_a, _, cpu_a), (rate_b, p50_b, _, cpu_b) = rows
            ratios = f"{rate_a / rate_b:8.2f} {p50_a / p50_b:7.2f} {'':7} {cpu_a / cpu_b:12.2f}"
            print(f"{kind:18} {'ratio':9} {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls of a small kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--compare", metavar="REF", help="also run an emulator from this git ref")
    parser.add_argument("--only", default="", help="only the call kinds whose name contains this")
    args = parser.parse_args()
    with ExitStack() as stack:
        roots = [("this", ROOT)]
        if args.compare:
            roots.append((args.compare[:9], stack.enter_context(checkout(args.compare))))
        targets = []
        for label, root in roots:
            settings, pid = stack.enter_context(emulator(root))
            print(f"emulator {label}: pid {pid}", file=sys.stderr)
            targets.append(Target(label, settings, pid, args.partitions, args.keys))
        kinds = [k for k in KINDS if args.only in k]
        for r in range(args.rounds):
            for kind in kinds:
                n = max(5, int(args.calls * KINDS[kind]))
                for t in targets[r % 2 :] + targets[: r % 2]:  # who goes first alternates
                    t.run(kind, n)
    print(f"bench_emulator_calls: {args.partitions} partitions, {args.keys} objects, {args.rounds} rounds")
    report(targets, kinds)


if __name__ == "__main__":
    main()
