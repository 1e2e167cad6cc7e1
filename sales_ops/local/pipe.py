"""Stand-in for the EventBridge Pipe: DynamoDB stream → Kinesis, as AWS runs it.

It reads its definition from the Pipes API (source stream, batch size, partition-key path), polls
every shard of the table's stream, and forwards each record in the Lambda-event shape that a Pipe
delivers (eventSourceARN added, ApproximateCreationDateTime in epoch seconds). Order per key is
kept: records for the same key go out in separate, sequential PutRecords rounds. Records that a
PutRecords call rejects are retried. The checkpoint moves only after a batch is fully on Kinesis,
so a crash replays (at-least-once) and never skips.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from sales_ops.local.checkpoint import Checkpoints
from sales_ops.local.shards import DynamoDBStreamApi, ShardReader
from sales_ops.settings import Settings

log = logging.getLogger("sales_ops.pipe")

MAX_PUT_RECORDS = 500  # Kinesis PutRecords limits: 500 records, 5 MiB per call.
MAX_PUT_BYTES = 5 * 1024 * 1024


@dataclass
class PipeStats:
    records_in: int = 0
    records_out: int = 0
    put_calls: int = 0
    put_retries: int = 0
    last_forwarded_at: float | None = None
    last_event_age_s: float | None = None
    errors: int = 0


def pipe_event(record: dict, source_arn: str) -> dict:
    """A stream record (wire form) → the Lambda-event shape a Pipe puts on Kinesis."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = int(created)  # a Pipe sends whole seconds
    return {**record, "dynamodb": dynamodb, "eventSourceARN": source_arn}


def json_path_getter(path: str) -> Callable[[dict], str]:
    """A getter for the simple `$.a.b.c` paths a Pipe's PartitionKey uses."""
    if not path.startswith("$."):
        return lambda _record: path  # a constant partition key
    parts = path[2:].split(".")

    def get(record: dict) -> str:
        value: Any = record
        for part in parts:
            value = value[part]
        return str(value)

    return get


def per_key_rounds(entries: list[tuple[str, bytes, str]]) -> list[list[tuple[str, bytes, str]]]:
    """Split (key, data, seq) entries into rounds in which each key appears at most once.

    Kinesis orders records per shard only within what it has accepted; a retried record could land
    behind a later one for the same key. Sending the n-th change of a key in round n, and finishing a
    round before starting the next, keeps every key's changes in stream order.
    """
    rounds: list[list[tuple[str, bytes, str]]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        n = seen.get(entry[0], 0)
        seen[entry[0]] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(entry)
    return rounds


def chunks(entries: list[tuple[str, bytes, str]]) -> Iterable[list[tuple[str, bytes, str]]]:
    """Chunks that respect PutRecords' count and size limits."""
    chunk: list[tuple[str, bytes, str]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry[1]) + len(entry[0])
        if chunk and (len(chunk) == MAX_PUT_RECORDS or size + entry_size > MAX_PUT_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


def pipe_checkpoints(settings: Settings, source_arn: str) -> Checkpoints:
    return Checkpoints(settings.state_path("checkpoints", "pipe.json"), source_arn)


class PipeStandIn:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kinesis = settings.client("kinesis")
        self.stats = PipeStats()
        definition = settings.client("pipes").describe_pipe(Name=settings.pipe)
        self.source_arn: str = definition["Source"]
        self.target_stream: str = definition["Target"].rsplit("/", 1)[-1]
        source = definition.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        self.batch_size: int = int(source.get("BatchSize", 100))
        self.starting_position: str = source.get("StartingPosition", "TRIM_HORIZON")
        key_path = definition["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"]
        self.partition_key = json_path_getter(key_path)
        self.checkpoints = pipe_checkpoints(settings, self.source_arn)
        api = DynamoDBStreamApi(settings.client("dynamodbstreams"), self.source_arn)
        self.reader = ShardReader(api, self.checkpoints, self.starting_position)
        log.info(
            "pipe %s: %s → %s, batch %d, key %s",
            settings.pipe,
            self.source_arn,
            self.target_stream,
            self.batch_size,
            key_path,
        )

    def poll_once(self) -> int:
        """Forward one page per shard; returns how many records were forwarded."""
        forwarded = 0
        try:
            for shard_id, records in self.reader.pages(self.batch_size):
                if records:
                    self.forward(records)
                    self.checkpoints.commit({shard_id: records[-1]["dynamodb"]["SequenceNumber"]})
                    forwarded += len(records)
        except Exception:
            self.reader.rewind()  # a page not (fully) forwarded is read again from the checkpoint
            raise
        return forwarded

    def forward(self, records: list[dict]) -> None:
        """Put `records` on Kinesis, all of them, keeping order per key."""
        entries = []
        for record in records:
            event = pipe_event(record, self.source_arn)
            entries.append(
                (
                    self.partition_key(event),
                    orjson.dumps(event),
                    record["dynamodb"]["SequenceNumber"],
                )
            )
        self.stats.records_in += len(records)
        for round_entries in per_key_rounds(entries):
            for chunk in chunks(round_entries):
                self._put_all(chunk)
        self.stats.records_out += len(records)
        self.stats.last_forwarded_at = time.time()
        newest = records[-1]["dynamodb"].get("ApproximateCreationDateTime")
        if newest is not None:
            self.stats.last_event_age_s = round(time.time() - newest, 3)

    def _put_all(self, chunk: list[tuple[str, bytes, str]]) -> None:
        """PutRecords until every record is accepted; only the rejected ones are sent again."""
        pending = chunk
        attempt = 0
        while pending:
            self.stats.put_calls += 1
            response = self.kinesis.put_records(
                StreamName=self.target_stream,
                Records=[{"PartitionKey": key, "Data": data} for key, data, _ in pending],
            )
            if not response.get("FailedRecordCount"):
                return
            pending = [
                entry
                for entry, result in zip(pending, response["Records"], strict=True)
                if "ErrorCode" in result
            ]
            attempt += 1
            self.stats.put_retries += len(pending)
            log.warning("PutRecords rejected %d records; retry %d", len(pending), attempt)
            time.sleep(min(0.05 * 2**attempt, 2.0))
