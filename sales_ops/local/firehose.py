"""Stand-in for Firehose with a Kinesis source, a Lambda processor and dynamic partitioning.

It reads its definition from the Firehose API (source stream, bucket, prefixes, buffering hints,
Lambda processor and its retries) and then does what the service does:
- reads every shard of the source stream and buffers records until SizeInMBs or IntervalInSeconds;
- invokes the real handler in-process with the AWS transformation event, in invocations of at most
  the Lambda payload limit, and validates the answer as Firehose does (one output per input, the
  same recordIds, a valid result, base64 data);
- retries a failed invocation NumberOfRetries times, then sends that batch to the error prefix;
- writes Ok records to the prefix with `!{partitionKeyFromLambda:…}` filled from each record's
  partitionKeys, ProcessingFailed records as Firehose error records under the error prefix;
- compresses objects with the destination's CompressionFormat (GZIP, with Firehose's `.gz` name,
  or UNCOMPRESSED), error output included, as the service does;
- moves its checkpoint only after the S3 writes succeeded (at-least-once; a replay after a crash
  repeats whole records, never loses one).
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import logging
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from sales_ops.local.checkpoint import Checkpoints
from sales_ops.local.shards import KinesisApi, ShardReader
from sales_ops.raw_objects import EXTENSIONS, encode_body, object_name
from sales_ops.settings import HANDLER_PATH, Settings

log = logging.getLogger("sales_ops.firehose")

# Firehose's Lambda buffering hint for Kinesis sources (ProcessorParameter BufferSizeInMBs: 1 MB).
# A batch is cut once it passes this, and one Kinesis record is at most 1 MiB (~1.4 MB in base64),
# so an invocation stays far below Lambda's 6 MB request limit without measuring it.
LAMBDA_BATCH_BYTES = 1024 * 1024
VALID_RESULTS = {"Ok", "Dropped", "ProcessingFailed"}
_PARTITION_KEY = re.compile(r"!\{partitionKeyFromLambda:([^}]+)\}")


class InvalidResponse(Exception):
    """The Lambda's answer breaks Firehose's contract; the message says how."""


def load_handler(path: Path = HANDLER_PATH) -> ModuleType:
    """Import the Lambda's single file as Lambda would: by path, not as part of our package."""
    spec = importlib.util.spec_from_file_location("firehose_transform_handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the Lambda handler from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Buffered:
    shard_id: str
    sequence_number: str
    partition_key: str
    arrival_ms: int
    data: bytes  # the raw record bytes as Kinesis holds them


@dataclass
class FirehoseStats:
    records_in: int = 0
    ok: int = 0
    dropped: int = 0
    processing_failed: int = 0
    invocation_failures: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    flushes: int = 0
    buffered: int = 0
    last_flush_at: float | None = None
    errors: int = 0


@dataclass(frozen=True)
class DeliveryConfig:
    arn: str
    version: str
    source_arn: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_seconds: float
    lambda_arn: str
    retries: int
    compression: str = "UNCOMPRESSED"  # the destination's CompressionFormat

    @classmethod
    def describe(cls, settings: Settings) -> DeliveryConfig:
        desc = settings.client("firehose").describe_delivery_stream(
            DeliveryStreamName=settings.delivery_stream
        )["DeliveryStreamDescription"]
        dest = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
        params = {
            p["ParameterName"]: p["ParameterValue"]
            for proc in dest.get("ProcessingConfiguration", {}).get("Processors", [])
            if proc["Type"] == "Lambda"
            for p in proc["Parameters"]
        }
        hints = dest.get("BufferingHints", {})
        compression = dest.get("CompressionFormat", "UNCOMPRESSED")
        if compression not in EXTENSIONS:  # ZIP, Snappy: not what the template allows
            raise ValueError(f"the stand-in does not write CompressionFormat {compression!r}")
        return cls(
            arn=desc["DeliveryStreamARN"],
            version=str(desc.get("VersionId", "1")),
            source_arn=desc["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"],
            bucket=dest["BucketARN"].split(":::", 1)[1],
            prefix=dest.get("Prefix", ""),
            error_prefix=dest.get("ErrorOutputPrefix", ""),
            buffer_bytes=int(hints.get("SizeInMBs", 5)) * 1024 * 1024,
            buffer_seconds=float(hints.get("IntervalInSeconds", 300)),
            lambda_arn=params["LambdaArn"],
            retries=int(params.get("NumberOfRetries", 3)),
            compression=compression,
        )


def firehose_checkpoints(settings: Settings, source_arn: str) -> Checkpoints:
    return Checkpoints(settings.state_path("checkpoints", "firehose.json"), source_arn)


class FirehoseStandIn:
    def __init__(self, settings: Settings, handler_module: ModuleType | None = None) -> None:
        self.settings = settings
        self.config = DeliveryConfig.describe(settings)
        self.s3 = settings.client("s3")
        self.lambda_module = handler_module or load_handler()
        self.checkpoints = firehose_checkpoints(settings, self.config.source_arn)
        self.reader = ShardReader(
            KinesisApi(settings.client("kinesis"), self.config.source_arn), self.checkpoints
        )
        self.stats = FirehoseStats()
        self.buffer: list[Buffered] = []
        self._buffer_bytes = 0
        self._buffer_started: float | None = None
        log.info(
            "firehose %s: %s → s3://%s/%s, buffer %d B / %.0f s, retries %d, %s",
            settings.delivery_stream,
            self.config.source_arn,
            self.config.bucket,
            self.config.prefix,
            self.config.buffer_bytes,
            self.config.buffer_seconds,
            self.config.retries,
            self.config.compression,
        )

    def poll_once(self) -> int:
        """Read what is new on every shard into the buffer, flushing when a hint is reached."""
        read = 0
        try:
            for shard_id, records in self.reader.pages(10_000):
                for record in records:
                    self._add(shard_id, record)
                    if self._buffer_bytes >= self.config.buffer_bytes:
                        self.flush()
                read += len(records)
        except Exception:
            # A failed flush keeps its buffer; the rest of the page is read again after it.
            self.reader.rewind(self._buffered_positions())
            raise
        if self.buffer and time.monotonic() - (self._buffer_started or 0) >= self.config.buffer_seconds:
            self.flush()
        return read

    def _buffered_positions(self) -> dict[str, str]:
        """Per shard, the last record taken in: buffered, else checkpointed."""
        positions = dict(self.checkpoints.shards)
        positions.update({item.shard_id: item.sequence_number for item in self.buffer})
        return positions

    def _add(self, shard_id: str, record: dict) -> None:
        if not self.buffer:
            self._buffer_started = time.monotonic()
        arrival = record.get("ApproximateArrivalTimestamp")
        self.buffer.append(
            Buffered(
                shard_id=shard_id,
                sequence_number=record["SequenceNumber"],
                partition_key=record["PartitionKey"],
                arrival_ms=int(arrival.timestamp() * 1000) if arrival else int(time.time() * 1000),
                data=record["Data"],
            )
        )
        self._buffer_bytes += len(record["Data"])
        self.stats.records_in += 1
        self.stats.buffered = len(self.buffer)

    # --- delivering ------------------------------------------------------------------------
    def flush(self) -> None:
        """Transform and deliver the whole buffer, then checkpoint it."""
        if not self.buffer:
            return
        ok_lines: dict[str, list[bytes]] = defaultdict(list)
        errors: list[dict] = []
        for batch in self._lambda_batches(self.buffer):
            self._process(batch, ok_lines, errors)
        now = datetime.now(UTC)
        for prefix, lines in ok_lines.items():
            self._put_object(prefix, b"".join(lines), now)
        if errors:
            error_prefix = self._fill(self.config.error_prefix, {}, now, "processing-failed")
            self._put_object(error_prefix, b"".join(orjson.dumps(e) + b"\n" for e in errors), now)
        positions: dict[str, str] = {}
        for item in self.buffer:
            positions[item.shard_id] = item.sequence_number
        self.checkpoints.commit(positions)
        self.stats.flushes += 1
        self.stats.last_flush_at = time.time()
        self.buffer, self._buffer_bytes, self._buffer_started = [], 0, None
        self.stats.buffered = 0

    def _lambda_batches(self, items: list[Buffered]) -> list[list[Buffered]]:
        batches: list[list[Buffered]] = []
        batch: list[Buffered] = []
        size = 0
        for item in items:
            # base64 grows data by 4/3; ~300 bytes of envelope per record.
            item_size = len(item.data) * 4 // 3 + 300
            if batch and size + item_size > LAMBDA_BATCH_BYTES:
                batches.append(batch)
                batch, size = [], 0
            batch.append(item)
            size += item_size
        if batch:
            batches.append(batch)
        return batches

    def _event(self, batch: list[Buffered]) -> dict[str, Any]:
        return {
            "invocationId": str(uuid.uuid4()),
            "sourceKinesisStreamArn": self.config.source_arn,
            "deliveryStreamArn": self.config.arn,
            "region": self.settings.region,
            "records": [
                {
                    "recordId": f"{item.sequence_number}{i:06d}",
                    "approximateArrivalTimestamp": item.arrival_ms,
                    "data": base64.b64encode(item.data).decode(),
                    "kinesisRecordMetadata": {
                        "sequenceNumber": item.sequence_number,
                        "subsequenceNumber": 0,
                        "partitionKey": item.partition_key,
                        "shardId": item.shard_id,
                        "approximateArrivalTimestamp": item.arrival_ms,
                    },
                }
                for i, item in enumerate(batch)
            ],
        }

    def _process(self, batch: list[Buffered], ok_lines: dict[str, list[bytes]], errors: list[dict]) -> None:
        event = self._event(batch)
        attempts, failure = 0, None
        while attempts <= self.config.retries:
            attempts += 1
            try:
                outputs = self._invoke(event)
                break
            except InvalidResponse as exc:
                failure = ("Lambda.InvalidResponse", str(exc))
            except Exception as exc:  # the function itself failed, as Lambda would report it
                failure = ("Lambda.FunctionError", f"{type(exc).__name__}: {exc}")
            self.stats.invocation_failures += 1
            log.warning("invocation %d/%d failed: %s", attempts, self.config.retries + 1, failure[1])
        else:
            assert failure is not None  # every attempt failed (there is at least one)
            for record in event["records"]:
                errors.append(self._error_record(record, attempts, *failure))
            self.stats.processing_failed += len(batch)
            return
        for record, out in zip(event["records"], outputs, strict=True):
            result = out["result"]
            if result == "Ok":
                keys = out.get("metadata", {}).get("partitionKeys", {})
                try:
                    prefix = self._fill(self.config.prefix, keys, None, None)
                except InvalidResponse as exc:
                    code = "DynamicPartitioning.MissingKey"
                    errors.append(self._error_record(record, attempts, code, str(exc)))
                    self.stats.processing_failed += 1
                    continue
                ok_lines[prefix].append(base64.b64decode(out["data"]))
                self.stats.ok += 1
            elif result == "Dropped":
                self.stats.dropped += 1
            else:
                reason = self._reason(record["data"])
                errors.append(self._error_record(record, attempts, "Lambda.ProcessingFailedStatus", reason))
                self.stats.processing_failed += 1

    def _invoke(self, event: dict[str, Any]) -> list[dict]:
        response = self.lambda_module.handler(event, None)
        return validate_response(event, response)

    def _reason(self, data_b64: str) -> str:
        explain = getattr(self.lambda_module, "explain_failure", None)
        reason = explain(data_b64) if explain else None
        return reason or "ProcessingFailed status set for record"

    def _error_record(self, record: dict, attempts: int, code: str, message: str) -> dict[str, Any]:
        return {
            "attemptsMade": attempts,
            "arrivalTimestamp": record["approximateArrivalTimestamp"],
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": int(time.time() * 1000),
            "rawData": record["data"],
            "lambdaArn": self.config.lambda_arn,
        }

    @staticmethod
    def _fill(prefix: str, keys: dict[str, str], now: datetime | None, error_type: str | None) -> str:
        """Evaluate Firehose's prefix expressions that our configuration uses."""

        def key(match: re.Match) -> str:
            name = match.group(1)
            if name not in keys:
                raise InvalidResponse(f"partition key {name!r} missing from the Lambda's metadata")
            return str(keys[name])

        out = _PARTITION_KEY.sub(key, prefix)
        if error_type is not None:
            out = out.replace("!{firehose:error-output-type}", error_type)
        if now is not None:
            out = re.sub(r"!\{timestamp:([^}]+)\}", lambda m: now.strftime(_java_date(m.group(1))), out)
        return out

    def _put_object(self, prefix: str, body: bytes, now: datetime) -> None:
        # Firehose's own object naming: <stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<random><ext>.
        compression = self.config.compression
        name = object_name(
            self.settings.delivery_stream, self.config.version, now, str(uuid.uuid4()), compression
        )
        body = encode_body(body, compression)
        self.s3.put_object(Bucket=self.config.bucket, Key=prefix + name, Body=body)
        self.stats.objects_written += 1
        self.stats.bytes_written += len(body)


def _java_date(pattern: str) -> str:
    """Firehose's Java-style timestamp pattern (yyyy/MM/dd/HH) as strftime."""
    for java, c in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")):
        pattern = pattern.replace(java, c)
    return pattern


def validate_response(event: dict[str, Any], response: Any) -> list[dict]:
    """Check the Lambda's answer as Firehose does; returns its records in input order."""
    if not isinstance(response, dict) or not isinstance(response.get("records"), list):
        raise InvalidResponse("response has no 'records' list")
    inputs = [r["recordId"] for r in event["records"]]
    outputs = response["records"]
    if len(outputs) != len(inputs):
        raise InvalidResponse(f"{len(outputs)} records returned for {len(inputs)} sent")
    by_id: dict[str | None, dict] = {}
    for out in outputs:
        rid = out.get("recordId") if isinstance(out, dict) else None
        if rid in by_id:
            raise InvalidResponse(f"duplicated recordId {rid}")
        by_id[rid] = out
    missing = [rid for rid in inputs if rid not in by_id]
    if missing:
        raise InvalidResponse(f"missing recordId {missing[0]}")
    for out in outputs:
        if out.get("result") not in VALID_RESULTS:
            raise InvalidResponse(f"invalid result {out.get('result')!r} for {out['recordId']}")
        if out["result"] == "Ok":
            try:
                base64.b64decode(out.get("data", ""), validate=True)
            except (binascii.Error, TypeError) as exc:
                raise InvalidResponse(f"data of {out['recordId']} is not base64") from exc
    return [by_id[rid] for rid in inputs]
