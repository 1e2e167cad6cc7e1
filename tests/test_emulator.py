"""The embedded AWS itself: loopback only, and the guarantees our moto patches restore."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest

from sales_ops.local.emulator import snapshot_path


def _listening_addresses(port: int) -> set[str]:
    addresses = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            ip_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                addresses.add(socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]))
    return addresses


def test_emulator_listens_on_loopback_only(local_stack):
    assert _listening_addresses(local_stack.port) == {"127.0.0.1"}


def test_concurrent_stream_writes_get_unique_ordered_sequence_numbers(local_stack):
    # A table of its own with a stream no Pipe reads: the session's orders table, and so its lake,
    # never see these items (they are not orders; the pipeline would record them as failed).
    ddb = local_stack.client("dynamodb", max_pool_connections=16)
    table = f"emu-sequence-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )

    def write(worker: int) -> None:
        for i in range(40):
            ddb.put_item(TableName=table, Item={"order_id": {"S": f"emu-{worker}-{i}"}})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    streams = local_stack.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    iterator, sequence_numbers, ours = iterator["ShardIterator"], [], 0
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not page["Records"]:
            break
        for record in page["Records"]:
            sequence_numbers.append(int(record["dynamodb"]["SequenceNumber"]))
            ours += record["dynamodb"]["Keys"]["order_id"]["S"].startswith("emu-")
        iterator = page["NextShardIterator"]
    ddb.delete_table(TableName=table)
    assert ours == 8 * 40
    assert sequence_numbers == sorted(set(sequence_numbers)), "duplicate or out-of-order sequence numbers"


def test_concurrent_kinesis_puts_are_all_kept_and_read_back(local_stack):
    kinesis = local_stack.client("kinesis", max_pool_connections=16)
    kinesis.create_stream(StreamName="emu-concurrency", ShardCount=1)

    def put(worker: int) -> None:
        for batch in range(5):
            records = [{"PartitionKey": "k", "Data": f"{worker}-{batch}-{i}".encode()} for i in range(100)]
            assert (
                kinesis.put_records(StreamName="emu-concurrency", Records=records)["FailedRecordCount"] == 0
            )

    threads = [threading.Thread(target=put, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    shard = kinesis.list_shards(StreamName="emu-concurrency")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="emu-concurrency", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    seen: list[bytes] = []
    while True:
        page = kinesis.get_records(ShardIterator=iterator, Limit=700)
        if not page["Records"]:
            break
        seen += [r["Data"] for r in page["Records"]]
        iterator = page["NextShardIterator"]
    assert len(seen) == len(set(seen)) == 6 * 5 * 100  # none overwritten, none read twice


def test_snapshot_is_written_on_stop(fresh_stack):
    from sales_ops.local import supervisor

    supervisor.down(fresh_stack, log=lambda *_: None)
    assert snapshot_path(fresh_stack.state_dir).stat().st_size > 0
    supervisor.up(fresh_stack, log=lambda *_: None)


@pytest.mark.slow  # starts the emulator itself
def test_emulator_exits_at_once_when_its_port_is_taken(tmp_path):
    import subprocess
    import sys

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sales_ops.local.emulator",
                "--port",
                str(port),
                "--state-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "in use" in result.stderr
