"""How far behind each stand-in is: records on its source after its checkpoint.

Used by `local status` (lag per stage) and by `load --wait` (done when nothing is pending anywhere
and Firehose's buffer is empty). Reads the sources through the same APIs the stand-ins use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sales_ops.local.checkpoint import Checkpoints, read_json
from sales_ops.settings import Settings

PAGE = 1000
STATUS_COUNT_LIMIT = 100_000  # status counts pending records up to here, then says "at least"


@dataclass
class StageLag:
    stage: str
    pending: int
    oldest_pending_age_s: float | None

    @property
    def caught_up(self) -> bool:
        return self.pending == 0


def _age(ts: datetime | None) -> float | None:
    return round(time.time() - ts.timestamp(), 1) if ts else None


def pipe_lag(settings: Settings, limit: int = STATUS_COUNT_LIMIT) -> StageLag:
    """Records on the DynamoDB stream after the Pipe's checkpoint (counted up to `limit`)."""
    streams = settings.client("dynamodbstreams")
    source = settings.client("pipes").describe_pipe(Name=settings.pipe)["Source"]
    checkpoints = Checkpoints(settings.state_path("checkpoints", "pipe.json"), source)
    pending, oldest = 0, None
    for shard in streams.describe_stream(StreamArn=source)["StreamDescription"]["Shards"]:
        if pending >= limit:
            break
        kwargs = {"StreamArn": source, "ShardId": shard["ShardId"]}
        seq = checkpoints.get(shard["ShardId"])
        kwargs |= (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seq}
            if seq
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = streams.get_shard_iterator(**kwargs)["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=min(PAGE, limit - pending))
            records = page["Records"]
            if not records:
                break
            if oldest is None:
                oldest = records[0]["dynamodb"].get("ApproximateCreationDateTime")
            pending += len(records)
            iterator = page.get("NextShardIterator") if pending < limit else None
    return StageLag("pipe", pending, _age(oldest))


def firehose_lag(settings: Settings, limit: int = STATUS_COUNT_LIMIT) -> StageLag:
    """Records on Kinesis after Firehose's checkpoint, buffered ones included (up to `limit`)."""
    kinesis = settings.client("kinesis")
    desc = settings.client("firehose").describe_delivery_stream(DeliveryStreamName=settings.delivery_stream)
    source = desc["DeliveryStreamDescription"]["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"]
    stream = source.rsplit("/", 1)[-1]
    checkpoints = Checkpoints(settings.state_path("checkpoints", "firehose.json"), source)
    pending, oldest = 0, None
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        if pending >= limit:
            break
        kwargs = {"StreamName": stream, "ShardId": shard["ShardId"]}
        seq = checkpoints.get(shard["ShardId"])
        kwargs |= (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": seq}
            if seq
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = kinesis.get_shard_iterator(**kwargs)["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=min(PAGE * 10, limit - pending))
            records = page["Records"]
            if not records:
                break
            if oldest is None or records[0]["ApproximateArrivalTimestamp"] < oldest:
                oldest = records[0]["ApproximateArrivalTimestamp"]
            pending += len(records)
            iterator = page.get("NextShardIterator") if pending < limit else None
    return StageLag("firehose", pending, _age(oldest))


def pipeline_lag(settings: Settings, limit: int = STATUS_COUNT_LIMIT) -> list[StageLag]:
    return [pipe_lag(settings, limit), firehose_lag(settings, limit)]


def worker_status(settings: Settings) -> dict:
    """The workers' own counters (records in/out, flushes, errors), as they last wrote them."""
    return read_json(settings.state_path("status", "workers.json"), {}) or {}


class DeliveryTimeout(RuntimeError):
    """Changes did not reach S3 in time; the message says which stage holds them."""


def wait_delivered(settings: Settings, timeout: float = 300.0, poll: float = 0.5) -> float:
    """Block until every change on the table's stream is in S3; returns the seconds waited.

    Stages are checked in flow order: once the Pipe has nothing pending every change is on Kinesis,
    and once Firehose then has nothing pending (buffer included) every change is in S3.
    """
    from sales_ops.local.supervisor import processes

    started = time.monotonic()
    while True:
        # Only "is anything pending?" matters here: reading a whole backlog on every poll would
        # compete with the workers for the emulator (it halved the drain rate in the benchmark).
        lags = pipeline_lag(settings, limit=1)
        if all(lag.caught_up for lag in lags):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            lags = pipeline_lag(settings)  # the full count, once, for the message
            stuck = ", ".join(f"{lag.stage}: {lag.pending} pending" for lag in lags if not lag.caught_up)
            dead = [name for name, pid in processes(settings).items() if not pid]
            hint = f"; not running: {', '.join(dead)} (run `sales-ops local up`)" if dead else ""
            raise DeliveryTimeout(f"not all changes reached S3 within {timeout:.0f}s ({stuck}){hint}")
        time.sleep(poll)
