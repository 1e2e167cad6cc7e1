"""The embedded AWS keeps every acknowledged write through a SIGKILL, identically, and readers heal.

Each test runs its own emulator process (`python -m sales_ops.local.emulator`) and kills it with
SIGKILL, as a crash would; snapshots are pushed out of the way (one an hour) so that what comes
back comes from the journal.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from sales_ops.local.checkpoint import Checkpoints
from sales_ops.local.journal import JOURNAL_DIR, Journal, JournalCorrupt, read_entries
from sales_ops.local.shards import DynamoDBStreamApi, KinesisApi, ShardReader
from sales_ops.local.supervisor import port_open
from tests.harness import ROOT, free_port, stack_settings

pytestmark = pytest.mark.slow


@contextmanager
def emulator(state_dir: Path, port: int, preexec_fn=None, every: str = "3600") -> Iterator[subprocess.Popen]:
    """An emulator process on `port`, killed with SIGKILL on exit (never stopped cleanly)."""
    log = (state_dir.parent / f"emulator-{port}.log").open("ab")
    cmd = [sys.executable, "-m", "sales_ops.local.emulator", "--port", str(port)]
    cmd += ["--state-dir", str(state_dir), "--snapshot-every", every]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        preexec_fn=preexec_fn,
    )
    try:
        deadline = time.monotonic() + 90
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _make_resources(settings) -> None:
    ddb = settings.client("dynamodb")
    ddb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    settings.client("kinesis").create_stream(StreamName="cdc", ShardCount=2)
    settings.client("s3").create_bucket(Bucket="durable-bucket")
    settings.client("glue").create_database(DatabaseInput={"Name": "durable_db"})


def _write_concurrently(settings, writers: int = 6, each: int = 25) -> None:
    ddb = settings.client("dynamodb", max_pool_connections=writers * 2)
    kinesis = settings.client("kinesis", max_pool_connections=writers * 2)
    s3 = settings.client("s3", max_pool_connections=writers * 2)

    def write(w: int) -> None:
        for i in range(each):
            ddb.put_item(
                TableName="orders", Item={"order_id": {"S": f"o{(w * each + i) % 60}"}, "n": {"N": str(i)}}
            )
            kinesis.put_record(StreamName="cdc", PartitionKey=f"k{w}-{i}", Data=f"{w}-{i}".encode())
            s3.put_object(Bucket="durable-bucket", Key=f"raw/{w}/{i}.json", Body=f"{w}-{i}\n".encode())

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settings.client("glue").create_table(
        DatabaseName="durable_db", TableInput={"Name": "raw_orders", "Parameters": {"n": "1"}}
    )


def _stream_records(settings) -> list[tuple]:
    ddb, streams = settings.client("dynamodb"), settings.client("dynamodbstreams")
    arn = ddb.describe_table(TableName="orders")["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        page = streams.get_records(ShardIterator=it["ShardIterator"], Limit=1000)
        out += [
            (
                r["eventID"],
                r["eventName"],
                r["dynamodb"]["SequenceNumber"],
                r["dynamodb"]["ApproximateCreationDateTime"],
            )
            for r in page["Records"]
        ]
    return out


def _state(settings) -> dict:
    """Everything a worker or a query could have seen, with the identifiers that must not change."""
    kinesis, s3 = settings.client("kinesis"), settings.client("s3")
    records = []
    for shard in kinesis.list_shards(StreamName="cdc")["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName="cdc", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        page = kinesis.get_records(ShardIterator=it["ShardIterator"], Limit=10_000)
        records += [
            (shard["ShardId"], r["SequenceNumber"], r["Data"], r["ApproximateArrivalTimestamp"])
            for r in page["Records"]
        ]
    objects = [
        (o["Key"], o["ETag"], o["LastModified"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="durable-bucket")
        for o in page.get("Contents", [])
    ]
    items = sorted(str(i) for i in settings.client("dynamodb").scan(TableName="orders")["Items"])
    table = settings.client("glue").get_table(DatabaseName="durable_db", Name="raw_orders")["Table"]
    return {
        "stream": _stream_records(settings),
        "kinesis": records,
        "s3": objects,
        "items": items,
        "glue": (table["Name"], table["Parameters"]),
    }


def test_acknowledged_writes_survive_sigkill_with_the_same_sequence_numbers(tmp_path):
    state_dir, port = tmp_path / "state", free_port()
    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):
        _make_resources(settings)
        _write_concurrently(settings)
        before = _state(settings)
    assert len(before["stream"]) == 150 and len(before["kinesis"]) == 150 and len(before["s3"]) == 150
    assert list(read_entries(state_dir / JOURNAL_DIR, after=0)), "the writes went to the journal"

    settings = stack_settings(state_dir, port)  # fresh clients for the new process
    with emulator(state_dir, port):
        after = _state(settings)
        # And the next write continues the same sequences rather than reusing a number.
        settings.client("dynamodb").put_item(TableName="orders", Item={"order_id": {"S": "after-restart"}})
        newest = _stream_records(settings)[-1]
    assert after == before
    assert int(newest[2]) == int(before["stream"][-1][2]) + 1

    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):  # a second crash, this time over the snapshot taken at recovery
        assert _stream_records(settings)[-1] == newest


def test_a_periodic_snapshot_is_skipped_when_nothing_was_journaled_since_the_last(tmp_path):
    state_dir, port = tmp_path / "state", free_port()
    settings = stack_settings(state_dir, port)
    snapshot = state_dir / "emulator.snapshot"

    def mtime() -> int:
        return snapshot.stat().st_mtime_ns if snapshot.exists() else 0

    def settled() -> int:  # the snapshot's time once unchanged over several periods (load-proof)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = mtime()
            time.sleep(0.8)
            if seen and mtime() == seen:
                return seen
        raise AssertionError("the periodic snapshot never stopped being rewritten")

    with emulator(state_dir, port, every="0.2"):
        s3 = settings.client("s3")
        s3.create_bucket(Bucket="quiet")
        first = settled()  # without the skip, rewritten every 0.2 s for ever
        for _ in range(5):
            s3.list_objects_v2(Bucket="quiet")  # reads: never journaled, nothing to snapshot
        time.sleep(0.6)
        assert mtime() == first
        s3.put_object(Bucket="quiet", Key="k", Body=b"v")
        assert settled() > first  # a write: the next period snapshots it
    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):  # after a SIGKILL: the snapshot, then whatever the journal adds
        assert settings.client("s3").get_object(Bucket="quiet", Key="k")["Body"].read() == b"v"


def test_torn_journal_tail_is_ignored_and_later_entries_go_to_a_new_segment(tmp_path):
    journal = Journal(tmp_path, next_seq=1)
    for n in range(3):
        journal.wait_durable(journal.append({"at": 0.0, "environ": {}, "body": b"x" * n}))
    journal.close()
    with (tmp_path / "wal-0000000000000001.log").open("ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x01\x02")  # a frame header whose payload never made it to disk
    assert [e["seq"] for e in read_entries(tmp_path, after=0)] == [1, 2, 3]

    journal = Journal(tmp_path, next_seq=4)
    journal.wait_durable(journal.append({"at": 0.0, "environ": {}, "body": b"later"}))
    journal.close()
    assert [e["seq"] for e in read_entries(tmp_path, after=0)] == [1, 2, 3, 4]
    assert [e["seq"] for e in read_entries(tmp_path, after=2)] == [3, 4]


@pytest.mark.parametrize("source", ["dynamodb-stream", "kinesis"])
def test_reader_reacquires_its_iterator_after_an_emulator_restart(tmp_path, source):
    state_dir, port = tmp_path / "state", free_port()

    def reader(settings) -> ShardReader:
        checkpoints = Checkpoints(tmp_path / "checkpoints.json", "src")
        if source == "kinesis":
            arn = settings.client("kinesis").describe_stream(StreamName="cdc")["StreamDescription"][
                "StreamARN"
            ]
            return ShardReader(KinesisApi(settings.client("kinesis"), arn), checkpoints)
        arn = settings.client("dynamodb").describe_table(TableName="orders")["Table"]["LatestStreamArn"]
        return ShardReader(DynamoDBStreamApi(settings.client("dynamodbstreams"), arn), checkpoints)

    def write(settings, first: int, count: int) -> None:
        for i in range(first, first + count):
            if source == "kinesis":
                settings.client("kinesis").put_record(
                    StreamName="cdc", PartitionKey="k", Data=str(i).encode()
                )
            else:
                settings.client("dynamodb").put_item(TableName="orders", Item={"order_id": {"S": f"o{i}"}})

    def drain(r: ShardReader) -> list[str]:
        seen = []
        for _ in range(5):
            seen += [r.api.sequence_number(rec) for _, records in r.pages(3) for rec in records]
        return seen

    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):
        _make_resources(settings)
        write(settings, 0, 5)
        r = reader(settings)
        first = drain(r)  # iterators now open and in memory, nothing checkpointed
        assert len(first) == 5
    with emulator(state_dir, port):
        write(settings, 5, 4)
        second = drain(r)
    assert len(second) == 4, "after the restart the reader resumes where it stood"
    assert not set(first) & set(second)
    assert sorted(int(s) for s in first + second) == [int(s) for s in first + second]
    if source == "dynamodb-stream":  # its iterators live in the emulator; Kinesis' encode the position
        assert r.reacquired >= 1


def test_a_full_disk_refuses_writes_clearly_and_loses_no_acknowledged_one(tmp_path):
    state_dir, port = tmp_path / "state", free_port()
    limit = 96 * 1024

    def small_disk() -> None:  # files may not grow past `limit`: writes fail with EFBIG, like ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    settings = stack_settings(state_dir, port)
    acked, errors = [], []
    with emulator(state_dir, port, small_disk) as proc:
        _make_resources(settings)
        # No client retries: each refusal comes back at once instead of after botocore's backoff
        # (several seconds a call), and the emulator is sent the ten refused writes that two calls
        # of the default client (five attempts each) sent it.
        ddb = settings.client("dynamodb", retries={"max_attempts": 1, "mode": "standard"})
        for i in range(2000):
            try:
                ddb.put_item(TableName="orders", Item={"order_id": {"S": f"o{i}"}, "pad": {"S": "x" * 300}})
                acked.append(f"o{i}")
            except ClientError as exc:
                errors.append(str(exc))
                if len(errors) == 10:
                    break
        assert errors, "the limit was never reached"
        assert "cannot write the emulator's journal" in errors[0]
        assert proc.poll() is None, "the emulator stays up and keeps serving reads"
        assert ddb.describe_table(TableName="orders")["Table"]["TableName"] == "orders"
    with emulator(state_dir, port):  # space freed: everything acknowledged is back, nothing else
        keys = {
            item["order_id"]["S"]
            for page in settings.client("dynamodb").get_paginator("scan").paginate(TableName="orders")
            for item in page["Items"]
        }
        assert keys == set(acked)
        records = _stream_records(settings)
        assert len(records) == len(acked)


def _journal_of(tmp_path: Path, entries: int) -> Path:
    journal = Journal(tmp_path, next_seq=1)
    for n in range(entries):
        journal.wait_durable(journal.append({"at": 0.0, "environ": {}, "body": b"x" * (n + 1)}))
    journal.close()
    return tmp_path / "wal-0000000000000001.log"


@pytest.mark.parametrize("where", [0.25, 0.5, 0.9])
def test_a_flipped_byte_before_the_tail_stops_replay_and_keeps_the_journal(tmp_path, where):
    # Issue 23: one byte flipped a quarter into the journal used to end the replay there, silently
    # dropping every acknowledged write after it.
    segment = _journal_of(tmp_path, 40)
    data = bytearray(segment.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.raises(
        JournalCorrupt, match=r"journal is corrupt: .*wal-0000000000000001.log has .* at byte"
    ):
        list(read_entries(tmp_path, after=0))
    assert segment.read_bytes() == bytes(data)


def test_a_bad_last_frame_is_a_torn_tail_and_zeros_after_a_crash_too(tmp_path):
    segment = _journal_of(tmp_path, 5)
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # the last entry cut short
    assert [e["seq"] for e in read_entries(tmp_path, after=0)] == [1, 2, 3, 4]
    segment.write_bytes(data + b"\0" * 4096)  # the file system extended the file with zeros
    assert [e["seq"] for e in read_entries(tmp_path, after=0)] == [1, 2, 3, 4, 5]


def test_a_journal_in_the_first_format_is_still_read(tmp_path):
    import pickle
    import struct
    import zlib

    frames = b""
    for seq in (1, 2, 3):
        payload = pickle.dumps({"seq": seq, "at": 0.0, "environ": {}, "body": b""})
        frames += struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    (tmp_path / "wal-0000000000000001.log").write_bytes(frames + b"\x40\x00")
    assert [e["seq"] for e in read_entries(tmp_path, after=0)] == [1, 2, 3]


def test_the_emulator_refuses_to_start_over_a_corrupt_journal(tmp_path):
    state_dir, port = tmp_path / "state", free_port()
    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):
        _make_resources(settings)
        for i in range(40):
            settings.client("dynamodb").put_item(TableName="orders", Item={"order_id": {"S": f"o{i}"}})
    (segment,) = sorted((state_dir / JOURNAL_DIR).glob("wal-*.log"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 4] ^= 0x01
    segment.write_bytes(bytes(data))
    log = tmp_path / "refused.log"
    cmd = [
        sys.executable,
        "-m",
        "sales_ops.local.emulator",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
    ]
    with log.open("wb") as out:
        done = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=out, timeout=120)
    assert done.returncode == 1
    text = log.read_text()
    assert "journal is corrupt" in text and "Traceback" not in text, text
    assert segment.read_bytes() == bytes(data)  # the evidence is kept, nothing was snapshotted over it
    assert not port_open(port)


@pytest.mark.parametrize("source", ["dynamodb-stream", "kinesis"])
def test_a_checkpoint_ahead_of_its_stream_is_reported(tmp_path, source):
    # Issue 23: a journal that lost writes rebuilt a shorter stream; the Pipe's checkpoint was
    # past its end, so new orders were never read while nothing looked pending.
    state_dir, port = tmp_path / "state", free_port()
    settings = stack_settings(state_dir, port)
    with emulator(state_dir, port):
        _make_resources(settings)
        checkpoints = Checkpoints(tmp_path / "checkpoints.json", "src")
        if source == "kinesis":
            kinesis = settings.client("kinesis")
            for i in range(3):
                kinesis.put_record(StreamName="cdc", PartitionKey="k", Data=str(i).encode())
            arn = kinesis.describe_stream(StreamName="cdc")["StreamDescription"]["StreamARN"]
            reader = ShardReader(KinesisApi(kinesis, arn), checkpoints)
        else:
            ddb = settings.client("dynamodb")
            for i in range(3):
                ddb.put_item(TableName="orders", Item={"order_id": {"S": f"o{i}"}})
            arn = ddb.describe_table(TableName="orders")["Table"]["LatestStreamArn"]
            reader = ShardReader(DynamoDBStreamApi(settings.client("dynamodbstreams"), arn), checkpoints)
        read = {shard: records[-1] for shard, records in reader.pages(10) if records}
        checkpoints.commit({shard: reader.api.sequence_number(last) for shard, last in read.items()})
        assert reader.checkpoints_off_stream() == []  # each names the last record passed on
        shard, position = next((s, reader.api.sequence_number(r)) for s, r in read.items())
        ahead = str(int(position) + 1000).zfill(len(position))
        checkpoints.commit({shard: ahead})
        assert reader.checkpoints_off_stream() == [shard]
        assert reader.pending(100).count == 0  # what `local status` showed: nothing pending
