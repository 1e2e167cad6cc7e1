"""The streaming path end to end on the embedded AWS: DynamoDB → Pipe → Kinesis → Firehose → S3."""

from __future__ import annotations

import base64
import collections
import json
import os
import signal
import threading
import time

import pytest

from sales_ops.load.shop import run_load
from sales_ops.local import supervisor
from sales_ops.local.progress import pipeline_lag, wait_delivered
from sales_ops.raw_objects import decode_body, is_gzip
from tests.harness import DELIVERY_POLL_S
from tests.helpers import assert_replay_matches_dynamodb, error_records, raw_events


def test_load_with_updates_and_deletes_replays_to_dynamodb(local_stack):
    # 500 orders: ~1,600 changes, many pages of the stream and several Firehose objects.
    summary = run_load(local_stack, orders=500, rate=0, seed=11)
    assert summary.orders == 500
    assert summary.updates > summary.orders  # lifecycles: several status changes per order
    assert summary.deletes > 0
    wait_delivered(local_stack, timeout=180, poll=DELIVERY_POLL_S)

    orders = assert_replay_matches_dynamodb(local_stack)
    assert orders >= 500 - summary.deletes
    events = raw_events(local_stack)
    kinds = collections.Counter(e["event_type"] for e in events)
    assert (
        kinds["INSERT"] >= 500 and kinds["MODIFY"] >= summary.updates and kinds["REMOVE"] >= summary.deletes
    )
    assert all(e["is_deleted"] == (e["event_type"] == "REMOVE") for e in events)


def test_partitions_follow_event_time(local_stack):
    run_load(local_stack, orders=20, rate=0, seed=12)
    wait_delivered(local_stack, timeout=60, poll=DELIVERY_POLL_S)
    keys = local_stack.client("s3").list_objects_v2(Bucket=local_stack.bucket, Prefix="raw/orders/")
    for obj in keys["Contents"]:
        body = local_stack.client("s3").get_object(Bucket=local_stack.bucket, Key=obj["Key"])["Body"].read()
        assert obj["Key"].endswith(".gz") and is_gzip(body), "raw/ is gzip by default, named as Firehose does"
        first = json.loads(decode_body(body).splitlines()[0])
        dt, hour = first["event_time"][:10], first["event_time"][11:13]
        assert obj["Key"].startswith(f"raw/orders/dt={dt}/hour={hour}/orders-raw-1-"), obj["Key"]


def _put_raw_on_kinesis(settings, data: bytes, key: str = "poison") -> None:
    settings.client("kinesis").put_record(StreamName=settings.kinesis_stream, PartitionKey=key, Data=data)


def test_poison_record_goes_to_errors_and_holds_nothing_up(fresh_stack):
    _put_raw_on_kinesis(fresh_stack, b"this is not json")
    run_load(fresh_stack, orders=30, rate=0, seed=13)  # real changes behind the poison
    wait_delivered(fresh_stack, timeout=60, poll=DELIVERY_POLL_S)

    errors = error_records(fresh_stack)
    assert len(errors) == 1
    error = errors[0]
    assert base64.b64decode(error["rawData"]) == b"this is not json"
    assert error["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert "json" in error["errorMessage"].lower()
    assert {"attemptsMade", "arrivalTimestamp", "attemptEndingTimestamp", "lambdaArn"} <= set(error)
    assert_replay_matches_dynamodb(fresh_stack)  # everything behind it was delivered


def test_sigkill_mid_load_resumes_from_checkpoints(fresh_stack):
    settings = fresh_stack
    # 600 orders (~1,900 changes). Past half of them the load waits until the worker is killed:
    # the kill always lands mid-load, with changes written before it and after it.
    killed, written, lock = threading.Event(), collections.Counter(), threading.Lock()

    def after_the_kill_past_half(n: int) -> None:  # run_load's on_progress, in its writer threads
        with lock:
            written["changes"] += n
        if written["changes"] > 950 and not killed.wait(60):
            killed.set()  # the test stopped before the kill: the load finishes, nothing hangs

    loader = threading.Thread(
        target=run_load,
        args=(settings, 600),
        kwargs={"rate": 0, "seed": 14, "on_progress": after_the_kill_past_half},
    )
    loader.start()
    deadline = time.monotonic() + 60
    while not raw_events_started(settings) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = supervisor.WORKERS.pid(settings)
    os.kill(pid, signal.SIGKILL)  # no flush, no checkpoint: a crash
    deadline = time.monotonic() + 10
    while supervisor.WORKERS.pid(settings) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.set()
    assert supervisor.WORKERS.pid(settings) is None
    loader.join()
    assert sum(lag.pending for lag in pipeline_lag(settings)) > 0  # work was left behind

    supervisor.up(settings, log=lambda *_: None)  # restarts just the dead worker
    wait_delivered(settings, timeout=180, poll=DELIVERY_POLL_S)
    assert_replay_matches_dynamodb(settings)
    by_sequence = collections.defaultdict(set)
    for event in raw_events(settings):
        by_sequence[event["sequence_number"]].add(json.dumps(event, sort_keys=True, default=str))
    redelivered = {seq: lines for seq, lines in by_sequence.items() if len(lines) > 1}
    assert not redelivered, f"a change was delivered twice with different content: {redelivered}"


def raw_events_started(settings) -> bool:
    return bool(settings.client("s3").list_objects_v2(Bucket=settings.bucket, Prefix="raw/").get("KeyCount"))


def test_down_then_up_keeps_data_and_resumes(fresh_stack):
    settings = fresh_stack
    run_load(settings, orders=100, rate=0, seed=15)
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    before = len(raw_events(settings))
    supervisor.down(settings, log=lambda *_: None)
    assert not supervisor.port_open(settings.port)

    supervisor.up(settings, log=lambda *_: None)
    assert len(raw_events(settings)) == before  # S3 objects survived
    assert_replay_matches_dynamodb(settings)  # and so did the table
    glue = settings.client("glue").get_database(Name=settings.database)
    assert glue["Database"]["Name"] == settings.database
    run_load(settings, orders=50, rate=0, seed=16)
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    assert_replay_matches_dynamodb(settings)
    ids = [e["event_id"] for e in raw_events(settings)]
    assert len(ids) == len(set(ids)), "restart re-delivered changes that were already in S3"


@pytest.mark.parametrize("size", [1, 499, 500, 501, 1200])
def test_pipe_batches_respect_kinesis_limits_and_key_order(size):
    from sales_ops.local.pipe import chunks, per_key_rounds

    entries = [(f"k{i % 7}", b"x" * 100, str(i)) for i in range(size)]
    rounds = per_key_rounds(entries)
    for round_entries in rounds:
        keys = [key for key, _, _ in round_entries]
        assert len(keys) == len(set(keys))
        assert all(len(chunk) <= 500 for chunk in chunks(round_entries))
    flattened = [entry for round_entries in rounds for entry in round_entries]
    for key in {k for k, _, _ in entries}:
        assert [s for k, _, s in flattened if k == key] == [s for k, _, s in entries if k == key]


def test_lambda_and_package_agree_on_the_order_attributes():
    from sales_ops.local.firehose import load_handler
    from sales_ops.schema import ORDER_ATTRIBUTES

    assert load_handler().ORDER_ATTRIBUTES == ORDER_ATTRIBUTES
