"""The fault suite (`make faults`): inject the faults of issue 11 into a private local stack, check
the invariants after them, and print the figures.

Faults, at random moments (seeded):
- SIGKILL of the emulator (>= 10) and of the stand-in workers during a mock load of --orders orders;
  after each, what a user would run: `sales-ops local up` (here: the same `supervisor.up`);
- S3 SlowDown (503) on PutObject and Kinesis ProvisionedThroughputExceeded for a stretch;
- poison records put straight on Kinesis;
- SIGKILL of a `sales-ops compact` holding the lock, then the next compaction;
- duplicated and reordered raw objects, then a compaction;
- a full disk under the emulator's state dir (RLIMIT_FSIZE on its files: EFBIG, like ENOSPC).

Invariants, checked at the end (and the compaction ones after each compaction):
- no acknowledged write lost: every order's item equals the last write the load got a 200 for;
- replaying raw S3 equals DynamoDB; orders_latest equals DynamoDB (the reconciliation check);
- the checks pass (processing_failed must count exactly the poison records);
- no event_id with two different contents (duplicates with the same content are counted).

Usage: python bench/faults.py [--orders 2000] [--emulator-kills 10] [--worker-kills 4] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.compaction import compact
from sales_ops.curated.lock import LOCK_KEY
from sales_ops.load.shop import LoadSummary, Shop, TableWriter, write_catalogue
from sales_ops.local import supervisor
from sales_ops.local.checkpoint import read_json, write_json_atomic
from sales_ops.local.faults import ENV_FLAG, faults_path
from sales_ops.local.progress import wait_delivered
from sales_ops.quality import run_checks
from sales_ops.query import DuckDBEngine
from sales_ops.raw_objects import decode_body
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings
from tests.harness import free_port
from tests.helpers import assert_replay_matches_dynamodb, dynamodb_items, list_keys

ROOT = Path(__file__).resolve().parents[1]
RETRYABLE = (BotoCoreError, ClientError, ConnectionError)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


class AckedWriter(TableWriter):
    """The mock load's writer, which keeps going through outages and records what was acknowledged."""

    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(settings, rate, threads=2)
        self.acked: dict[str, dict | None] = {}
        self.retries = 0
        self._lock = threading.Lock()
        self._decode = TypeDeserializer().deserialize

    def _flush(self, batch: list[dict], on_progress) -> None:
        while True:
            try:
                super()._flush(batch, on_progress)
                break
            except RETRYABLE:  # emulator down or restarting: the same batch again (idempotent puts)
                self.retries += 1
                time.sleep(0.3)
        with self._lock:  # a 200 for the whole batch: these are acknowledged writes
            for request in batch:
                if "PutRequest" in request:
                    item = {k: self._decode(v) for k, v in request["PutRequest"]["Item"].items()}
                    self.acked[item["order_id"]] = item
                else:
                    self.acked[request["DeleteRequest"]["Key"]["order_id"]["S"]] = None


class Suite:
    def __init__(self, args: argparse.Namespace, state_dir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "SALES_OPS_STATE_DIR": str(state_dir)}
        self.settings = Settings.from_env("local", env=env)
        self.recoveries: dict[str, list[float]] = defaultdict(list)
        self.injected: dict[str, int] = defaultdict(int)
        self.failures: list[str] = []
        self.writer: AckedWriter | None = None
        self.poison = 0

    # --- helpers ---------------------------------------------------------------------------------
    def up(self) -> None:
        while True:
            try:
                supervisor.up(self.settings, log=lambda *_: None)
                return
            except (supervisor.EmulatorError, *RETRYABLE) as exc:
                print(f"  local up failed ({exc}); again")
                time.sleep(0.5)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        if not ok:
            self.failures.append(f"{name}: {detail}")

    # --- faults ----------------------------------------------------------------------------------
    def kill_emulator(self) -> None:
        pid = supervisor.EMULATOR.pid(self.settings)
        if pid is None:
            return
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self.injected["SIGKILL emulator"] += 1
        while supervisor.port_open(self.settings.port):  # the kernel closes its socket as it exits
            time.sleep(0.02)
        self.up()  # waits until the emulator answers again (journal replayed)
        self.recoveries["SIGKILL emulator"].append(time.monotonic() - started)

    def kill_workers(self) -> None:
        pid = supervisor.WORKERS.pid(self.settings)
        if pid is None:
            return
        status = self.settings.state_path("status", "workers.json")
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self.injected["SIGKILL workers"] += 1
        self.up()
        while (read_json(status, {}) or {}).get("pid") in (pid, None):  # the new process reports
            time.sleep(0.05)
        self.recoveries["SIGKILL workers"].append(time.monotonic() - started)

    def kill_loop_during_load(self) -> None:
        writer = self.writer = AckedWriter(self.settings, self.args.rate)
        write_catalogue(self.settings)
        changes = list(Shop(self.args.seed).changes(self.args.orders))
        load = threading.Thread(target=writer.write, args=(iter(changes), LoadSummary()))
        load.start()
        kinds = ["emulator"] * self.args.emulator_kills + ["workers"] * self.args.worker_kills
        self.rng.shuffle(kinds)
        for kind in kinds:
            time.sleep(self.rng.uniform(0.5, 4.0))
            if not load.is_alive():
                break
            self.kill_emulator() if kind == "emulator" else self.kill_workers()
        load.join()
        print(
            f"  load: {len(changes)} changes of {self.args.orders} orders written; "
            f"{writer.retries} batch retries through outages"
        )
        if self.injected["SIGKILL emulator"] < self.args.emulator_kills:
            self.check(
                "all emulator kills landed during the load", False, "load finished first: lower --rate"
            )

    def throttling(self) -> None:
        until = time.time() + self.args.throttle_s
        write_json_atomic(
            faults_path(self.settings.state_dir),
            {"s3_slowdown_until": until, "kinesis_throttle_until": until},
        )
        self.injected["S3 SlowDown + Kinesis throttling"] += 1
        extra = list(Shop(self.args.seed + 1).changes(100))
        self.writer.write(iter(extra), LoadSummary())
        time.sleep(max(0.0, until - time.time()))
        started = time.monotonic()
        wait_delivered(self.settings, timeout=600)
        self.recoveries["S3 SlowDown + Kinesis throttling"].append(time.monotonic() - started)

    def poison_records(self) -> None:
        kinesis = self.settings.client("kinesis")
        for i in range(3):
            kinesis.put_record(
                StreamName=self.settings.kinesis_stream, PartitionKey=f"p{i}", Data=b"\xff{not json"
            )
        kinesis.put_record(
            StreamName=self.settings.kinesis_stream, PartitionKey="p", Data=b'{"eventName": 1}'
        )
        self.poison += 4
        self.injected["poison records"] += 4
        started = time.monotonic()
        wait_delivered(self.settings, timeout=600)
        self.recoveries["poison records"].append(time.monotonic() - started)

    def kill_compaction(self) -> None:
        env = {
            **os.environ,
            **self.settings.to_env(),
            "SALES_OPS_TARGET": "local",
        }
        victim = subprocess.Popen(
            [sys.executable, "-m", "sales_ops.cli", "compact", "--full"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        s3 = self.settings.client("s3")
        while victim.poll() is None:
            try:
                s3.head_object(Bucket=self.settings.bucket, Key=LOCK_KEY)
                break
            except ClientError:
                time.sleep(0.02)
        if victim.poll() is not None:
            self.check("compaction killed while holding the lock", False, "it finished first")
            return
        time.sleep(self.rng.uniform(0.0, 1.0))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.injected["SIGKILL compaction"] += 1
        started = time.monotonic()
        self.compact()
        delay = time.monotonic() - started
        self.recoveries["SIGKILL compaction"].append(delay)
        self.check("a killed compaction delays the next by at most 60 s", delay <= 60, f"{delay:.1f}s")

    def duplicate_and_reorder(self) -> None:
        s3 = self.settings.client("s3")
        keys = list_keys(self.settings, RAW_PREFIX)
        for key in self.rng.sample(keys, min(20, len(keys))):
            prefix, name = key.rsplit("/", 1)
            # Same content under an older-looking name: a redelivery that sorts before the original.
            s3.copy_object(
                Bucket=self.settings.bucket,
                Key=f"{prefix}/{name.replace('-20', '-19', 1)}-dup",
                CopySource={"Bucket": self.settings.bucket, "Key": key},
            )
            self.injected["duplicated + reordered raw objects"] += 1
        started = time.monotonic()
        self.compact()
        self.recoveries["duplicated + reordered raw objects"].append(time.monotonic() - started)

    def full_disk(self) -> None:
        """A private emulator whose files may not grow past --disk-limit bytes (EFBIG, as ENOSPC)."""
        with tempfile.TemporaryDirectory(prefix="faults-disk-") as tmp:
            state, port = Path(tmp) / "state", free_port()
            env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": str(state)}
            settings = Settings.from_env("local", env=env)
            limit = self.args.disk_limit

            def small_disk() -> None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

            log = Path(tmp) / "emulator.log"
            proc = self._emulator(state, port, log, small_disk)
            ddb = settings.client("dynamodb")
            ddb.create_table(
                TableName="t",
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            acked, refused, error = [], 0, ""
            for i in range(100_000):
                try:
                    ddb.put_item(TableName="t", Item={"k": {"S": f"k{i}"}, "pad": {"S": "x" * 400}})
                    acked.append(f"k{i}")
                except ClientError as exc:
                    refused, error = refused + 1, str(exc)
                    if refused >= 3:
                        break
            self.injected["full disk"] += 1
            self.check("a full disk gives a clear error", "journal" in error, error[:120])
            self.check("the emulator stays up on a full disk", proc.poll() is None)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            started = time.monotonic()
            proc = self._emulator(state, port, log, None)  # space freed: start again
            try:
                settings = Settings.from_env("local", env=env)
                self.recoveries["full disk"].append(time.monotonic() - started)
                keys = {
                    i["k"]["S"]
                    for p in settings.client("dynamodb").get_paginator("scan").paginate(TableName="t")
                    for i in p["Items"]
                }
                lost = [k for k in acked if k not in keys]
                self.check(
                    "full disk: acknowledged writes kept, refused ones not applied",
                    not lost and len(keys) == len(acked),
                    f"{len(acked)} acknowledged, {len(lost)} lost, {len(keys - set(acked))} unacknowledged",
                )
                self.lost_on_full_disk = len(lost)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()

    def _emulator(self, state: Path, port: int, log: Path, preexec) -> subprocess.Popen:
        with log.open("ab") as out:
            cmd = [sys.executable, "-m", "sales_ops.local.emulator", "--port", str(port)]
            proc = subprocess.Popen(
                [*cmd, "--state-dir", str(state), "--snapshot-every", "3600"],
                cwd=ROOT,
                stdout=out,
                stderr=out,
                preexec_fn=preexec,
            )
        while not supervisor.port_open(port):
            if proc.poll() is not None:
                raise SystemExit(f"emulator did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        return proc

    # --- invariants ------------------------------------------------------------------------------
    def compact(self) -> None:
        LocalCrawler(self.settings).run()
        with DuckDBEngine(self.settings) as engine:
            compact(self.settings, engine)

    def verify(self) -> tuple[int, int]:
        """The end-of-suite invariants; returns (acknowledged writes lost, duplicate events)."""
        items = dynamodb_items(self.settings)
        lost = 0
        for order_id, acked in self.writer.acked.items():
            if (items.get(order_id) if acked is not None else None) != acked:
                lost += 1
        self.check(
            "no acknowledged write lost", lost == 0, f"{lost} of {len(self.writer.acked)} orders differ"
        )
        try:
            orders = assert_replay_matches_dynamodb(self.settings)
            self.check("replay of raw S3 == DynamoDB", True, f"{orders} orders")
        except AssertionError as exc:
            self.check("replay of raw S3 == DynamoDB", False, str(exc)[:300])
        contents: dict[str, set[str]] = defaultdict(set)
        delivered = 0  # events the pipeline wrote (the copies this suite made are not counted)
        s3 = self.settings.client("s3")
        for key in list_keys(self.settings, RAW_PREFIX):
            body = decode_body(s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()).decode()
            for line in body.splitlines():
                event = json.loads(line)
                contents[event["event_id"]].add(json.dumps(event, sort_keys=True))
                delivered += not key.endswith("-dup")
        conflicting = sum(len(c) > 1 for c in contents.values())
        self.check("no event_id with two contents", conflicting == 0, f"{conflicting} event_ids")
        with DuckDBEngine(self.settings) as engine:
            outcomes = run_checks(self.settings, engine)
        for outcome in outcomes:
            if outcome.name == "no_processing_failed":
                failed = len(list_keys(self.settings, ERROR_PREFIX)) and _error_count(self.settings)
                self.check(
                    "processing failures are exactly the poison records", failed == self.poison, f"{failed}"
                )
            else:
                self.check(f"check {outcome.name}", outcome.passed, outcome.summary[:200])
        return lost, delivered - len(contents)

    def run(self) -> int:
        os.environ[ENV_FLAG] = "1"  # the emulator answers throttling from run/faults.json
        started = time.monotonic()
        print(f"stack on {self.settings.endpoint_url}, state in {self.settings.state_dir}")
        self.up()
        try:
            print("1. kill loop during the load")
            self.kill_loop_during_load()
            print("2. S3 SlowDown and Kinesis throttling")
            self.throttling()
            print("3. poison records")
            self.poison_records()
            print("4. compaction killed holding the lock")
            self.compact()
            self.kill_compaction()
            print("5. duplicated and reordered raw objects")
            self.duplicate_and_reorder()
            print("6. invariants")
            lost, duplicates = self.verify()
            print("7. full disk under the state dir")
            self.full_disk()
        finally:
            supervisor.down(self.settings, log=lambda *_: None)
        self.table(lost + getattr(self, "lost_on_full_disk", 0), duplicates, time.monotonic() - started)
        return 1 if self.failures else 0

    def table(self, lost: int, duplicates: int, seconds: float) -> None:
        print(f"\nfault suite: {self.args.orders} orders, seed {self.args.seed}, {seconds:.0f}s")
        print(f"| {'fault':36} | {'injected':>8} | {'recover p50':>11} | {'recover p95':>11} |")
        print(f"|{'-' * 38}|{'-' * 10}|{'-' * 13}|{'-' * 13}|")
        for fault, count in self.injected.items():
            times = self.recoveries.get(fault, [])
            p50 = f"{statistics.median(times):.1f}s" if times else "-"
            p95 = f"{percentile(times, 95):.1f}s" if times else "-"
            print(f"| {fault:36} | {count:8} | {p50:>11} | {p95:>11} |")
        all_times = [t for times in self.recoveries.values() for t in times]
        print(f"faults injected: {sum(self.injected.values())}; acknowledged writes lost: {lost}; ")
        print(
            f"time to recover (all faults): p50 {statistics.median(all_times):.1f}s, "
            f"p95 {percentile(all_times, 95):.1f}s; duplicates (same event_id, same content): {duplicates}"
        )
        print("RESULT:", "PASS" if not self.failures else "FAIL\n  " + "\n  ".join(self.failures))


def _error_count(settings: Settings) -> int:
    from tests.helpers import error_records

    return len(error_records(settings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=80.0, help="load changes/s (long enough for the kills)")
    parser.add_argument("--emulator-kills", type=int, default=10)
    parser.add_argument("--worker-kills", type=int, default=4)
    parser.add_argument("--throttle-s", type=float, default=8.0)
    parser.add_argument("--disk-limit", type=int, default=256 * 1024, help="bytes a file may reach")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sales-ops-faults-") as tmp:
        return Suite(args, Path(tmp) / "state").run()


if __name__ == "__main__":
    sys.exit(main())
