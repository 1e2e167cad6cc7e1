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
with the neighbours' load. `--emulator-root DIR` runs the emulator from another checkout (e.g. a
`git archive` of the commit before a change) against the same client code, for a before/after.

    .venv/bin/python bench/bench_emulator.py [--requests 200] [--rounds 3] [--emulator-root DIR]
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def measure(pid: int, ops: dict[str, Op], requests: int, rounds: int) -> dict[str, Any]:
    """Each operation's latencies and CPU ms/request, and the mix's requests/s and CPU ms/request."""
    lat: dict[str, list[float]] = {name: [] for name in ops}
    cpu_ms: dict[str, list[float]] = {name: [] for name in ops}
    mix_rates, mix_cpu = [], []
    for op in ops.values():
        op.call(0)  # warm: imports, the first backend app, botocore's models
    for _ in range(rounds):
        for name, op in ops.items():
            calls = max(2, requests // op.weight)
            latencies, _, cpu = phase(pid, op.call, calls)
            lat[name] += latencies
            cpu_ms[name].append(1000 * cpu / (calls * op.requests))
        turns = max(1, requests // 10)
        total = sum(op.requests for op in ops.values()) * turns
        _, wall, cpu = phase(pid, mixed(list(ops.values())), turns * len(ops))
        mix_rates.append(total / wall)
        mix_cpu.append(1000 * cpu / total)
    return {"lat": lat, "cpu_ms": cpu_ms, "rate": mix_rates, "mix_cpu": mix_cpu}


def report(figures: dict[str, Any]) -> None:
    print(f"{'operation':34} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'emulator CPU ms/request':>24}")
    for name, lat in figures["lat"].items():
        cpu = statistics.median(figures["cpu_ms"][name])
        print(f"{name:34} {pct(lat, 50):7.2f} {pct(lat, 90):7.2f} {pct(lat, 99):7.2f} {cpu:24.2f}")
    rate, cpu = statistics.median(figures["rate"]), statistics.median(figures["mix_cpu"])
    print(f"mix of all: {rate:.0f} requests/s, emulator CPU {cpu:.2f} ms/request")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per operation per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=400, help="partitions of the raw table")
    parser.add_argument("--keys", type=int, default=500, help="objects in the bucket")
    parser.add_argument("--only", default="", help="run only the operations whose name contains this")
    parser.add_argument("--emulator-root", type=Path, default=ROOT, help="checkout to run the emulator from")
    args = parser.parse_args()
    with emulator(args.emulator_root.resolve()) as (settings, pid):
        ops = operations(settings, populate(settings, args.partitions, args.keys))
        ops = {name: op for name, op in ops.items() if args.only in name}
        figures = measure(pid, ops, args.requests, args.rounds)
    print(f"bench_emulator on {os.cpu_count()} CPUs, emulator from {args.emulator_root}")
    print(
        f"{args.partitions} partitions, {args.keys} objects; about {args.requests} requests per operation "
        f"per round, median over {args.rounds} rounds"
    )
    report(figures)


if __name__ == "__main__":
    main()
