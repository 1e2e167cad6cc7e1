"""Stand-in for the EventBridge Pipe: DynamoDB stream → Kinesis, as AWS runs it.

It reads its definition from the Pipes API (source stream, batch size, partition-key path), polls
every shard of the table's stream, and forwards each record in the Lambda-event shape that a Pipe
delivers (eventSourceARN added, ApproximateCreationDateTime in epoch seconds). Order per key is
kept: records for the same key go out in separate, sequential PutRecords rounds. Records that a
PutRecords call rejects are retried. The checkpoint moves only after a batch is fully on Kinesis
or dead-lettered, so a crash replays (at-least-once) and never skips.

A record Kinesis refuses for good (a partition key over 256 characters: DynamoDB keys may be 2,048
bytes; a record over 1 MiB) used to be retried for ever, stalling the Pipe. As the stack's Pipe does
(MaximumRetryAttempts 10, bisect on error, a dead-letter queue: infra/template.yaml), it now goes to
the dead letters after its retries, and the records behind it go on: `dead_letters.jsonl` under the
state dir, one JSON line per record (the reason, the shard and sequence number, the event), counted
by `local status`, which then exits 1 (docs/design.md §5).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError, ParamValidationError

from sales_ops.local.checkpoint import Checkpoints
from sales_ops.local.shards import DynamoDBStreamApi, ShardReader
from sales_ops.settings import Settings

log = logging.getLogger("sales_ops.pipe")

MAX_PUT_RECORDS = 500  # Kinesis PutRecords limits: 500 records, 5 MiB per call.
MAX_PUT_BYTES = 5 * 1024 * 1024
MAX_KEY_CHARS = 256  # Kinesis: a partition key is 1 to 256 Unicode characters
MAX_RECORD_BYTES = 1024 * 1024  # Kinesis: data plus partition key, at most 1 MiB a record
DEFAULT_RETRIES = 10  # the stack's MaximumRetryAttempts, when the definition names none
REFUSALS = ("ValidationException", "InvalidArgumentException")  # the whole call is refused


@dataclass
class PipeStats:
    records_in: int = 0
    records_out: int = 0
    put_calls: int = 0
    put_retries: int = 0
    last_forwarded_at: float | None = None
    last_event_age_s: float | None = None
    errors: int = 0
    dead_letters: int = 0


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


def refusal(key: str, data: bytes) -> str | None:
    """Why Kinesis would refuse this record whatever the retries, or None."""
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        return f"partition key of {len(key)} characters (Kinesis takes 1 to {MAX_KEY_CHARS})"
    size = len(data) + len(key.encode())
    if size > MAX_RECORD_BYTES:
        return f"record of {size:,} bytes (Kinesis takes at most {MAX_RECORD_BYTES:,})"
    return None


def dead_letters_path(settings: Settings) -> Any:
    return settings.state_path("dlq", "pipe.jsonl")


def dead_letter_count(settings: Settings) -> int:
    """Records the Pipe stand-in gave up on (the local dead-letter queue's depth)."""
    path = dead_letters_path(settings)
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


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
        retries = source.get("MaximumRetryAttempts", DEFAULT_RETRIES)
        self.max_retries: int = DEFAULT_RETRIES if retries is None or retries < 0 else int(retries)
        self.dead_letters = dead_letters_path(settings)
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
        """Put every record of `chunk` on Kinesis or in the dead letters; only rejected ones again.

        A record Kinesis would refuse whatever the retries goes straight to the dead letters; a
        refused call is bisected to find its culprit (the Pipe's bisect on error); a record still
        rejected after `max_retries` retries (e.g. throttled for good) is dead-lettered too.
        Connection errors and the like raise: the page is read again from the checkpoint.
        """
        pending = []
        for entry in chunk:
            reason = refusal(entry[0], entry[1])
            if reason:
                self._dead_letter(entry, reason, attempts=0)
            else:
                pending.append(entry)
        attempt = 0
        while pending:
            self.stats.put_calls += 1
            try:
                response = self.kinesis.put_records(
                    StreamName=self.target_stream,
                    Records=[{"PartitionKey": key, "Data": data} for key, data, _ in pending],
                )
            except (ParamValidationError, ClientError) as exc:
                code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else "ParamValidation"
                if isinstance(exc, ClientError) and code not in REFUSALS:
                    raise
                if len(pending) == 1:
                    self._dead_letter(pending[0], f"PutRecords refused: {exc}", attempts=attempt + 1)
                    return
                half = len(pending) // 2
                self._put_all(pending[:half])
                self._put_all(pending[half:])
                return
            if not response.get("FailedRecordCount"):
                return
            failed = [
                (entry, result)
                for entry, result in zip(pending, response["Records"], strict=True)
                if "ErrorCode" in result
            ]
            attempt += 1
            if attempt > self.max_retries:
                for entry, result in failed:
                    why = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".strip(": ")
                    self._dead_letter(entry, f"rejected after {self.max_retries} retries ({why})", attempt)
                return
            pending = [entry for entry, _ in failed]
            self.stats.put_retries += len(pending)
            log.warning("PutRecords rejected %d records; retry %d", len(pending), attempt)
            time.sleep(min(0.05 * 2**attempt, 2.0))

    def _dead_letter(self, entry: tuple[str, bytes, str], reason: str, attempts: int) -> None:
        """One JSON line in the local dead-letter queue, durable before the checkpoint moves."""
        key, data, sequence = entry
        event = orjson.loads(data)
        letter = {
            "at": time.time(),
            "pipe": self.settings.pipe,
            "source": self.source_arn,
            "sequenceNumber": sequence,
            "eventID": event.get("eventID"),
            "partitionKey": key[:MAX_KEY_CHARS] + ("…" if len(key) > MAX_KEY_CHARS else ""),
            "reason": reason,
            "attempts": attempts,
            "event": data.decode("utf-8", "replace"),
        }
        fd = os.open(self.dead_letters, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, json.dumps(letter).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.stats.dead_letters += 1
        log.error("dead-lettered stream record %s (event %s): %s", sequence, letter["eventID"], reason)
