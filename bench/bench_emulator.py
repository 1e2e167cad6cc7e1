"""The emulator's cost per request for the pipeline's hot calls: latency, requests/s and its CPU.

A real emulator (`python -m sales_ops.local.emulator`, as `local up` and the tests start it, with
its journal and fsync; snapshots held off so that they do not land in one phase) is populated
with a realistic state: a Glue database, a raw table with --partitions hourly partitions and a
Parquet table, a bucket of --keys small objects under hour prefixes (some with unicode, spaces
and `+` in their names). Then each operation is called --requests times in a phase of its own,
and the emulator process's CPU time over the phase (/proc/<pid>/stat) is divided by the number of
HTTP requests. A last phase runs a fixed mix of them all for requests/s. Phases repeat over
--rounds rounds (machine noise hits each alike); medians are printed.

CPU-ms per request is the figure to compare across runs on a shared machine; wall latencies move
with the neighbours' load. `--compare REF` also starts an emulator from a `git archive` of git ref
REF (e.g. `main`, `HEAD~1`), populated alike, against the same client code: each phase runs on
both in turn, who goes first alternating by round so the machine's noise hits both alike, and a
ratio row (this tree / REF) follows each operation.

    .venv/bin/python bench/bench_emulator.py [--requests 200] [--rounds 3] [--compare REF] [--only S]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sales_ops.catalog import glue
from sales_ops.local.supervisor import port_open
from sales_ops.schema import RAW_COLUMNS
from sales_ops.settings import Settings
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bench_db"
BUCKET = "bench-bucket"
ODD_NAMES = ("ü-straße.json", "日本 語.json", "a+b c.json", "quote'd&amp.json")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator(root: Path) -> Iterator[tuple[Settings, int]]:
    """An emulator run from `root` on a free port with a temp state dir; yields settings and pid."""
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "sales_ops.local.emulator", "--port", str(port), "--state-dir", tmp]
        env = {**os.environ, "PYTHONPATH": str(root)}
        log = Path(tmp) / "emulator.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cmd, "--snapshot-every", "3600"], cwd=root, env=env, stdout=out, stderr=out
            )
        try:
            while not port_open(port):
                if proc.poll() is not None:
                    raise SystemExit(f"the emulator did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
            env_vars = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": tmp}
            yield Settings.from_env("local", env=env_vars), proc.pid
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


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


def hours(n: int) -> list[tuple[str, str]]:
    """`n` (dt, hour) partition values, newest last."""
    return [(f"2026-{1 + i // 720 % 12:02d}-{1 + i // 24 % 28:02d}", f"{i % 24:02d}") for i in range(n)]


def populate(settings: Settings, partitions: int, keys: int) -> dict[str, Any]:
    """The state the phases read: a database, two tables, partitions and objects."""
    g, s3 = settings.client("glue"), settings.client("s3")
    g.create_database(DatabaseInput={"Name": DATABASE, "Description": "bench"})
    s3.create_bucket(Bucket=BUCKET)
    location = f"s3://{BUCKET}/raw/orders/"
    g.create_table(
        DatabaseName=DATABASE,
        TableInput=glue.raw_table_input(
            location, [(c.name, glue.declared_raw_type(c.raw_types)) for c in RAW_COLUMNS]
        ),
    )
    parquet = glue.parquet_table_input(
        "orders_latest", [("order_id", "string"), ("amount", "double")], f"s3://{BUCKET}/curated/latest/"
    )
    g.create_table(DatabaseName=DATABASE, TableInput=parquet)
    table = g.get_table(DatabaseName=DATABASE, Name=glue.RAW_TABLE)["Table"]
    values = hours(partitions)
    entries = [
        glue.partition_input(table, list(v), f"{location}dt={v[0]}/hour={v[1]}/", {"rows": str(i)})
        for i, v in enumerate(values)
    ]
    for i in range(0, len(entries), glue.GLUE_BATCH):
        g.batch_create_partition(
            DatabaseName=DATABASE,
            TableName=glue.RAW_TABLE,
            PartitionInputList=entries[i : i + glue.GLUE_BATCH],
        )
    names = [f"raw/orders/dt={v[0]}/hour={v[1]}/orders-{i:05d}.json.gz" for i, v in enumerate(values * keys)][
        :keys
    ]
    names += [f"raw/odd/{n}" for n in ODD_NAMES]
    for i, name in enumerate(names):
        s3.put_object(Bucket=BUCKET, Key=name, Body=b'{"order_id": "%d"}\n' % i * 20, Metadata={"n": str(i)})
    return {"values": values, "keys": names}


class Op(NamedTuple):
    call: Callable[[int], Any]  # one call, given its index
    requests: int = 1  # HTTP requests one call makes
    weight: int = 1  # a phase makes --requests // weight calls (a call worth that many requests)


def operations(settings: Settings, state: dict[str, Any]) -> dict[str, Op]:
    g, s3 = settings.client("glue"), settings.client("s3")
    values, keys = state["values"], state["keys"]
    pages = -(-len(keys) // 100)  # ListObjectsV2 pages of 100 over the whole bucket

    def list_all(_: int) -> None:
        for _page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, PaginationConfig={"PageSize": 100}
        ):
            pass

    def get_partitions(_: int) -> None:
        for _page in g.get_paginator("get_partitions").paginate(
            DatabaseName=DATABASE, TableName=glue.RAW_TABLE
        ):
            pass  # one page: moto returns every partition at once

    def batch_get_partition(i: int) -> None:
        wanted = [{"Values": list(v)} for v in values[i % 5 : i % 5 + 20]]
        g.batch_get_partition(DatabaseName=DATABASE, TableName=glue.RAW_TABLE, PartitionsToGet=wanted)

    def hour_of(i: int) -> str:
        return keys[i % len(keys)].rsplit("/", 1)[0] + "/"

    return {
        "glue GetDatabase": Op(lambda i: g.get_database(Name=DATABASE)),
        "glue GetTable": Op(lambda i: g.get_table(DatabaseName=DATABASE, Name=glue.RAW_TABLE)),
        f"glue GetPartitions ({len(values)})": Op(get_partitions, weight=20),
        "glue BatchGetPartition (20)": Op(batch_get_partition, weight=2),
        "s3 ListObjectsV2 (prefix, delim)": Op(
            lambda i: s3.list_objects_v2(Bucket=BUCKET, Prefix="raw/", Delimiter="/")
        ),
        f"s3 ListObjectsV2 (all, {pages} pages)": Op(list_all, pages, pages),
        "s3 ListObjectsV2 (one hour)": Op(lambda i: s3.list_objects_v2(Bucket=BUCKET, Prefix=hour_of(i))),
        "s3 HeadObject": Op(lambda i: s3.head_object(Bucket=BUCKET, Key=keys[i % len(keys)])),
        "s3 GetObject": Op(lambda i: s3.get_object(Bucket=BUCKET, Key=keys[i % len(keys)])["Body"].read()),
        "s3 PutObject": Op(
            lambda i: s3.put_object(Bucket=BUCKET, Key=f"bench/put-{i}.json", Body=b"x" * 500)
        ),
    }


def phase(pid: int, call: Callable[[int], Any], calls: int) -> tuple[list[float], float, float]:
    """Latencies (ms) of `calls` calls, the phase's wall seconds and the emulator's CPU seconds."""
    latencies = []
    cpu, started = cpu_seconds(pid), time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        call(i)
        latencies.append(1000 * (time.perf_counter() - t))
    return latencies, time.perf_counter() - started, cpu_seconds(pid) - cpu


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def mixed(ops: list[Op]) -> Callable[[int], Any]:
    """One call of the fixed mix: every operation in turn."""
    return lambda i: ops[i % len(ops)].call(i // len(ops))


class Target:
    """One running, populated emulator and what was measured against it."""

    def __init__(
        self, label: str, settings: Settings, pid: int, partitions: int, keys: int, only: str
    ) -> None:
        self.label, self.pid = label, pid
        ops = operations(settings, populate(settings, partitions, keys))
        self.ops = {name: op for name, op in ops.items() if only in name}
        for op in self.ops.values():
            op.call(0)  # warm: imports, the first backend app, botocore's models
        self.lat: dict[str, list[float]] = {name: [] for name in self.ops}
        self.cpu_ms: dict[str, list[float]] = {name: [] for name in self.ops}
        self.mix_rates: list[float] = []
        self.mix_cpu: list[float] = []

    def run(self, name: str, requests: int) -> None:
        op = self.ops[name]
        calls = max(2, requests // op.weight)
        latencies, _, cpu = phase(self.pid, op.call, calls)
        self.lat[name] += latencies
        self.cpu_ms[name].append(1000 * cpu / (calls * op.requests))

    def run_mix(self, requests: int) -> None:
        turns = max(1, requests // 10)
        total = sum(op.requests for op in self.ops.values()) * turns
        _, wall, cpu = phase(self.pid, mixed(list(self.ops.values())), turns * len(self.ops))
        self.mix_rates.append(total / wall)
        self.mix_cpu.append(1000 * cpu / total)

    def row(self, name: str) -> tuple[float, float, float, float]:
        lat = self.lat[name]
        return pct(lat, 50), pct(lat, 90), pct(lat, 99), statistics.median(self.cpu_ms[name])


def measure(targets: list[Target], requests: int, rounds: int) -> None:
    """Every phase on every target, who goes first alternating by round."""
    for r in range(rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for name in targets[0].ops:
            for target in order:
                target.run(name, requests)
        for target in order:
            target.run_mix(requests)


def report(targets: list[Target]) -> None:
    head = f"{'operation':34} {'emulator':9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
    print(f"{head} {'emulator CPU ms/request':>24}")
    for name in targets[0].ops:
        rows = [t.row(name) for t in targets]
        for t, (p50, p90, p99, cpu) in zip(targets, rows, strict=True):
            print(f"{name:34} {t.label:9} {p50:7.2f} {p90:7.2f} {p99:7.2f} {cpu:24.2f}")
        if len(rows) == 2 and rows[1][0] > 0 and rows[1][3] > 0:
            p50, cpu = rows[0][0] / rows[1][0], rows[0][3] / rows[1][3]
            print(f"{name:34} {'ratio':9} {p50:7.2f} {'':15} {cpu:24.2f}")
    for t in targets:
        rate, cpu = statistics.median(t.mix_rates), statistics.median(t.mix_cpu)
        print(f"mix of all ({t.label}): {rate:.0f} requests/s, emulator CPU {cpu:.2f} ms/request")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per operation per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=400, help="partitions of the raw table")
    parser.add_argument("--keys", type=int, default=500, help="objects in the bucket")
    parser.add_argument("--only", default="", help="run only the operations whose name contains this")
    parser.add_argument("--compare", metavar="REF", help="also run an emulator from this git ref")
    args = parser.parse_args()
    if args.requests < 1 or args.rounds < 1 or args.partitions < 1 or args.keys < 1:
        parser.error("--requests, --rounds, --partitions and --keys must be ≥ 1")
    with ExitStack() as stack:
        roots = [("this", ROOT)]
        if args.compare:
            roots.append((args.compare[:9], stack.enter_context(checkout(args.compare))))
        targets = []
        for label, root in roots:
            settings, pid = stack.enter_context(emulator(root))
            targets.append(Target(label, settings, pid, args.partitions, args.keys, args.only))
        if not targets[0].ops:
            parser.error(f"no operation's name contains {args.only!r}")
        measure(targets, args.requests, args.rounds)
    print(f"bench_emulator on {os.cpu_count()} CPUs" + (f", against {args.compare}" if args.compare else ""))
    print(
        f"{args.partitions} partitions, {args.keys} objects; about {args.requests} requests per operation "
        f"per round, median over {args.rounds} rounds"
    )
    report(targets)


if __name__ == "__main__":
    main()
