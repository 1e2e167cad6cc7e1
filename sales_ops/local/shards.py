"""Reading a sharded stream from a checkpoint: DynamoDB Streams and Kinesis behind one interface.

The Pipe reads the table's stream and Firehose reads Kinesis the same way: list the shards, open
an iterator after each shard's checkpoint (or at the start position), read pages, and hand the
iterator on. The two APIs differ only in names, which the two small `…Api` classes absorb.
`ShardReader` is used by the stand-ins (in-memory iterators that move ahead of the checkpoint)
and by `progress` (a fresh look from the checkpoint, to count what is pending).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from sales_ops.local.checkpoint import Checkpoints
from sales_ops.settings import error_code

log = logging.getLogger("sales_ops.shards")

SHARD_REFRESH_S = 5.0  # resharding is rare and listing is not free: re-list at most this often


class _StreamApi:
    client: Any

    def read(self, iterator: str, limit: int) -> tuple[list[dict], str | None]:
        page = self.client.get_records(ShardIterator=iterator, Limit=limit)
        return page["Records"], page.get("NextShardIterator")


def _keep_wire_records(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore before-parse hook: hand GetRecords' records over as the wire JSON.

    botocore's model-driven parser spent ~0.5 ms a record on the nested AttributeValue maps and
    made the Pipe CPU-bound. The wire form is also what a Pipe forwards: creation time in epoch
    seconds, binary values as base64. Errors (status ≥ 300) are left to botocore.
    """
    if response_dict["status_code"] != 200:
        return
    body = orjson.loads(response_dict["body"])
    customized_response_dict["Records"] = body.pop("Records", [])
    response_dict["body"] = orjson.dumps(body)  # the rest (NextShardIterator) parses as usual


class DynamoDBStreamApi(_StreamApi):
    """Records come back in wire form (see `_keep_wire_records`)."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client, self.arn = client, stream_arn
        client.meta.events.register(
            "before-parse.dynamodb-streams.GetRecords", _keep_wire_records, unique_id="sales-ops-wire-records"
        )

    def list_shards(self) -> list[str]:
        shards, start = [], None
        while True:
            kwargs = {"StreamArn": self.arn} | ({"ExclusiveStartShardId": start} if start else {})
            desc = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards += [s["ShardId"] for s in desc["Shards"]]
            start = desc.get("LastEvaluatedShardId")
            if not start:
                return shards

    def at_iterator(self, shard_id: str, sequence_number: str) -> str:
        kwargs = {"StreamArn": self.arn, "ShardId": shard_id, "SequenceNumber": sequence_number}
        return self.client.get_shard_iterator(ShardIteratorType="AT_SEQUENCE_NUMBER", **kwargs)[
            "ShardIterator"
        ]

    def iterator(self, shard_id: str, after: str | None, start_at: str) -> str:
        kwargs = {"StreamArn": self.arn, "ShardId": shard_id}
        kwargs |= (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
            if after
            else {"ShardIteratorType": start_at}
        )
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    @staticmethod
    def sequence_number(record: dict) -> str:
        return record["dynamodb"]["SequenceNumber"]

    @staticmethod
    def created(record: dict) -> datetime | None:
        seconds = record["dynamodb"].get("ApproximateCreationDateTime")
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class KinesisApi(_StreamApi):
    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client, self.arn = client, stream_arn
        self.name = stream_arn.rsplit("/", 1)[-1]

    def list_shards(self) -> list[str]:
        shards, token = [], None
        while True:
            page = self.client.list_shards(**({"NextToken": token} if token else {"StreamName": self.name}))
            shards += [s["ShardId"] for s in page["Shards"]]
            token = page.get("NextToken")
            if not token:
                return shards

    def at_iterator(self, shard_id: str, sequence_number: str) -> str:
        kwargs = {"StreamName": self.name, "ShardId": shard_id, "StartingSequenceNumber": sequence_number}
        return self.client.get_shard_iterator(ShardIteratorType="AT_SEQUENCE_NUMBER", **kwargs)[
            "ShardIterator"
        ]

    def iterator(self, shard_id: str, after: str | None, start_at: str) -> str:
        kwargs = {"StreamName": self.name, "ShardId": shard_id}
        kwargs |= (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after
            else {"ShardIteratorType": start_at}
        )
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    @staticmethod
    def sequence_number(record: dict) -> str:
        return record["SequenceNumber"]

    @staticmethod
    def created(record: dict) -> datetime | None:
        return record.get("ApproximateArrivalTimestamp")


StreamApi = DynamoDBStreamApi | KinesisApi


@dataclass
class Pending:
    count: int
    oldest: datetime | None


# Read errors after which a shard's iterator is opened again from where this reader stands, as
# the managed consumers do: an iterator older than 5 minutes (ExpiredIteratorException), a position
# trimmed away (TrimmedDataAccessException), a shard or stream not (yet) known, and an iterator a
# restarted emulator no longer has (the emulator answers ExpiredIteratorException; plain moto
# answers 500 with a KeyError, which botocore reports as InternalFailure / InternalServerError /
# "500" once its own retries are spent).
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
# https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
REACQUIRE_CODES = frozenset(
    {
        "ExpiredIteratorException",
        "TrimmedDataAccessException",
        "ResourceNotFoundException",
        "InvalidArgumentException",
        "ValidationException",
        "InternalFailure",
        "InternalServerError",
        "500",
    }
)


class ShardReader:
    """Pages of new records per shard, starting after each shard's checkpoint.

    The reader remembers the last sequence number it handed out per shard, so that when an
    iterator must be opened again (see REACQUIRE_CODES) it resumes exactly there: nothing skipped,
    nothing read twice. A consumer that could not process what it was handed calls `rewind`.
    """

    def __init__(self, api: StreamApi, checkpoints: Checkpoints, start_at: str = "TRIM_HORIZON") -> None:
        self.api, self.checkpoints, self.start_at = api, checkpoints, start_at
        self._iterators: dict[str, str | None] = {}
        self._positions: dict[str, str] = {}
        self._shards: tuple[float, list[str]] | None = None
        self.reacquired = 0

    def shard_ids(self) -> list[str]:
        now = time.monotonic()
        if self._shards is None or now - self._shards[0] > SHARD_REFRESH_S:
            self._shards = (now, self.api.list_shards())
        return self._shards[1]

    def pages(self, limit: int) -> Iterator[tuple[str, list[dict]]]:
        """One page per open shard, moving the in-memory iterators (not the checkpoint)."""
        for shard_id in self.shard_ids():
            if shard_id not in self._iterators:
                after = self._positions.get(shard_id) or self.checkpoints.get(shard_id)
                self._iterators[shard_id] = self.api.iterator(shard_id, after, self.start_at)
            iterator = self._iterators[shard_id]
            if iterator is None:
                continue  # a closed shard, read to its end
            try:
                records, next_iterator = self.api.read(iterator, limit)
            except ClientError as exc:
                if error_code(exc) not in REACQUIRE_CODES:
                    raise
                self._iterators.pop(shard_id, None)  # opened again on the next poll, from our position
                self._shards = None
                self.reacquired += 1
                log.warning("%s on shard %s: iterator re-acquired", error_code(exc), shard_id)
                continue
            self._iterators[shard_id] = next_iterator
            if records:
                self._positions[shard_id] = self.api.sequence_number(records[-1])
            yield shard_id, records

    def rewind(self, positions: dict[str, str] | None = None) -> None:
        """Forget what was read past `positions` (default: past the checkpoints); it is read again."""
        self._iterators.clear()
        self._positions = dict(positions or {})

    def checkpoints_off_stream(self) -> list[str]:
        """Shards whose checkpoint names no record of the stream: one GetRecords each.

        A checkpoint is the sequence number of a record already passed on, so that record must be
        on the stream. When it is not, the checkpoint is ahead of a stream rebuilt shorter (issue
        23: a journal that lost acknowledged writes) and every record written there would be
        skipped while nothing looks pending; or the record was trimmed away (24 h on AWS).
        """
        off = []
        for shard_id in self.api.list_shards():
            checkpoint = self.checkpoints.get(shard_id)
            if not checkpoint:
                continue
            try:
                records, _ = self.api.read(self.api.at_iterator(shard_id, checkpoint), 1)
            except ClientError as exc:
                if error_code(exc) not in REACQUIRE_CODES:
                    raise
                records = []
            if not records or self.api.sequence_number(records[0]) != checkpoint:
                off.append(shard_id)
        return off

    def pending(self, limit: int, page: int = 1000) -> Pending:
        """Records after the checkpoints, counted up to `limit`, and the oldest one's time."""
        count, oldest = 0, None
        for shard_id in self.api.list_shards():
            iterator: str | None = self.api.iterator(shard_id, self.checkpoints.get(shard_id), self.start_at)
            while iterator and count < limit:
                records, iterator = self.api.read(iterator, min(page, limit - count))
                if not records:
                    break
                first = self.api.created(records[0])
                oldest = first if oldest is None or (first and first < oldest) else oldest
                count += len(records)
        return Pending(count, oldest)
