"""How far behind each stand-in is: records on its source after its checkpoint.

Used by `local status` (lag per stage) and by `load --wait` (done when nothing is pending anywhere
and Firehose's buffer is empty). Reads the sources through the same APIs the stand-ins use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from sales_ops.local.checkpoint import read_json
from sales_ops.local.firehose import firehose_checkpoints
from sales_ops.local.pipe import pipe_checkpoints
from sales_ops.local.shards import DynamoDBStreamApi, KinesisApi, ShardReader
from sales_ops.settings import Settings

STATUS_COUNT_LIMIT = 100_000  # status counts pending records up to here, then says "at least"


@dataclass
class StageLag:
    stage: str
    pending: int
    oldest_pending_age_s: float | None
    # Shards whose checkpoint is not on the stream (ahead of it): their new records are never read.
    checkpoints_off_stream: list[str] = field(default_factory=list)

    @property
    def caught_up(self) -> bool:
        return self.pending == 0 and not self.checkpoints_off_stream


def _age(ts: datetime | None) -> float | None:
    return round(time.time() - ts.timestamp(), 1) if ts else None


def pipe_lag(settings: Settings, limit: int = STATUS_COUNT_LIMIT) -> StageLag:
    """Records on the DynamoDB stream after the Pipe's checkpoint (counted up to `limit`)."""
    source = settings.client("pipes").describe_pipe(Name=settings.pipe)["Source"]
    api = DynamoDBStreamApi(settings.client("dynamodbstreams"), source)
    reader = ShardReader(api, pipe_checkpoints(settings, source))
    pending = reader.pending(limit)
    return StageLag("pipe", pending.count, _age(pending.oldest), reader.checkpoints_off_stream())


def firehose_lag(settings: Settings, limit: int = STATUS_COUNT_LIMIT) -> StageLag:
    """Records on Kinesis after Firehose's checkpoint, buffered ones included (up to `limit`)."""
    desc = settings.client("firehose").describe_delivery_stream(DeliveryStreamName=settings.delivery_stream)
    source = desc["DeliveryStreamDescription"]["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"]
    api = KinesisApi(settings.client("kinesis"), source)
    reader = ShardReader(api, firehose_checkpoints(settings, source))
    pending = reader.pending(limit)
    return StageLag("firehose", pending.count, _age(pending.oldest), reader.checkpoints_off_stream())


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
