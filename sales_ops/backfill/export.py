"""DynamoDB exports to S3: start one, wait for it, and read it in AWS's documented layout.

The same calls on both targets: ExportTableToPointInTime and DescribeExport against DynamoDB (the
emulator writes the real layout, see sales_ops/local/export.py), then S3 GETs of the manifests and
data files. The table is never scanned: an export reads no table capacity.

Layout (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):
`<prefix>/AWSDynamoDB/<export-id>/manifest-summary.json` names `manifest-files.json`, one JSON line
per data file (`dataFileS3Key`, `itemCount`); each data file is gzip'd JSON lines `{"Item": {…}}` in
DynamoDB JSON. Point-in-time recovery must be on (infra/template.yaml turns it on); ExportTime must
lie in the recovery window (API reference: ExportTableToPointInTime).
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.settings import Settings

EXPORT_PREFIX = "exports/orders"  # the export's own S3Prefix in the pipeline's bucket
POLL_S = 2.0
# A DynamoDB item is at most 400 KB; in DynamoDB JSON (type tags, escapes, base64) its line stays
# well under this. It bounds a data file's decompressed size (per item the manifest announces).
MAX_ITEM_TEXT = 4 * 1024 * 1024


class ExportError(ValueError):
    """An export failed or cannot be read; the message says why."""


@dataclass
class ExportInfo:
    arn: str
    status: str
    export_time: datetime
    bucket: str
    prefix: str
    item_count: int | None = None
    failure: str | None = None

    @property
    def export_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def manifest_key(self) -> str:
        root = f"{self.prefix.strip('/')}/AWSDynamoDB" if self.prefix.strip("/") else "AWSDynamoDB"
        return f"{root}/{self.export_id}/manifest-summary.json"


def table_arn(settings: Settings) -> str:
    return settings.client("dynamodb").describe_table(TableName=settings.table)["Table"]["TableArn"]


def _info(description: dict[str, Any]) -> ExportInfo:
    failure = description.get("FailureMessage")
    return ExportInfo(
        arn=description["ExportArn"],
        status=description["ExportStatus"],
        export_time=_utc(description.get("ExportTime") or description.get("StartTime")),
        bucket=description["S3Bucket"],
        prefix=description.get("S3Prefix") or "",
        item_count=description.get("ItemCount"),
        failure=f"{description.get('FailureCode')}: {failure}" if failure else None,
    )


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def _export_time(at: datetime) -> datetime:
    """`at` in UTC, or an ExportError saying why DynamoDB could not take it (it takes epoch
    seconds: a time before 1970 or past 9999 in UTC is no ExportTime; was an OverflowError)."""
    try:
        utc = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
        utc.timestamp()
    except (OverflowError, ValueError, OSError):
        utc = None
    if utc is None or utc.year < 1970:
        raise ExportError(
            f"export time {at.isoformat()} is out of range: give a time in the PITR window (35 days)"
        )
    if utc > datetime.now(UTC):
        raise ExportError(f"export time {at.isoformat()} is in the future")
    return utc


def start_export(settings: Settings, at: datetime | None = None) -> ExportInfo:
    """Ask DynamoDB for a full export of the table as of `at` (default: now) into the bucket."""
    kwargs: dict[str, Any] = {
        "TableArn": table_arn(settings),
        "S3Bucket": settings.bucket,
        "S3Prefix": EXPORT_PREFIX,
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": "FULL_EXPORT",
    }
    if at is not None:
        kwargs["ExportTime"] = _export_time(at)
    response = settings.client("dynamodb").export_table_to_point_in_time(**kwargs)
    return _info(response["ExportDescription"])


def describe_export(settings: Settings, arn: str) -> ExportInfo:
    return _info(settings.client("dynamodb").describe_export(ExportArn=arn)["ExportDescription"])


def wait_export(
    settings: Settings,
    arn: str,
    timeout: float = 3600.0,
    on_progress: Callable[[ExportInfo, float], None] | None = None,
) -> ExportInfo:
    """Poll DescribeExport until the export is COMPLETED; ExportError if it fails or times out."""
    started = time.monotonic()
    while True:
        info = describe_export(settings, arn)
        elapsed = time.monotonic() - started
        if on_progress:
            on_progress(info, elapsed)
        if info.status == "COMPLETED":
            return info
        if info.status == "FAILED":
            raise ExportError(f"export {info.export_id} failed: {info.failure or 'no reason given'}")
        if elapsed > timeout:
            raise ExportError(f"export {info.export_id} still {info.status} after {timeout:.0f}s")
        time.sleep(POLL_S)


def latest_export(settings: Settings) -> ExportInfo | None:
    """The newest completed export in the bucket (None when there is none).

    Found in S3, not with ListExports: export IDs start with the epoch milliseconds, so they sort by
    time, and a complete export is one with a manifest-summary.json. No extra IAM is needed.
    """
    s3 = settings.client("s3")
    root = f"{EXPORT_PREFIX}/AWSDynamoDB/"
    ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket, Prefix=root, Delimiter="/"
    ):
        ids += [p["Prefix"][len(root) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    for export_id in sorted(ids, reverse=True):
        try:
            body = s3.get_object(Bucket=settings.bucket, Key=f"{root}{export_id}/manifest-summary.json")
        except s3.exceptions.NoSuchKey:
            continue  # still running, or failed
        summary = json.loads(body["Body"].read())
        at = datetime.fromisoformat(summary["exportTime"].replace("Z", "+00:00"))
        return ExportInfo(
            summary["exportArn"], "COMPLETED", at, settings.bucket, EXPORT_PREFIX, summary.get("itemCount")
        )
    return None


@dataclass
class ExportReader:
    """Reads one completed export from S3: the manifests, then every data file, item by item."""

    settings: Settings
    info: ExportInfo
    bytes_read: int = 0
    expected: int = 0  # items the manifests announce (data_files)

    def _get(self, key: str) -> bytes:
        try:
            body = self.settings.client("s3").get_object(Bucket=self.info.bucket, Key=key)["Body"].read()
        except self.settings.client("s3").exceptions.NoSuchKey:
            raise ExportError(f"s3://{self.info.bucket}/{key} is missing: not a complete export") from None
        self.bytes_read += len(body)
        return body

    def summary(self) -> dict[str, Any]:
        summary = _json_object(self._get(self.info.manifest_key), self.info.manifest_key)
        if not isinstance(summary.get("manifestFilesS3Key"), str) or not _count(summary.get("itemCount")):
            raise ExportError(f"{self.info.manifest_key} is not an export's manifest summary")
        return summary

    def data_files(self) -> list[dict[str, Any]]:
        """The manifest's data files; their item counts must add up to the summary's."""
        summary = self.summary()
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise ExportError(f"export {self.info.export_id} is {summary['outputFormat']}, not DYNAMODB_JSON")
        key = summary["manifestFilesS3Key"]
        files = [_json_object(line, key) for line in self._get(key).splitlines() if line.strip()]
        if not all(isinstance(f.get("dataFileS3Key"), str) and _count(f.get("itemCount")) for f in files):
            raise ExportError(f"{key} is not an export's manifest of data files")
        listed = sum(int(f["itemCount"]) for f in files)
        if listed != int(summary["itemCount"]):
            raise ExportError(
                f"export {self.info.export_id}: {key} lists {listed} items in {len(files)} files, "
                f"manifest-summary.json says {summary['itemCount']}: refusing an incomplete export"
            )
        self.expected = listed
        return files

    def items(self) -> Iterator[dict[str, Any]]:
        """Every item, decoded from DynamoDB JSON (numbers as Decimal, exact).

        Raises ExportError before the last item is handed out when the export does not hold what
        its manifests say: the backfill then writes nothing (its baseline partition is registered
        only at the end), so an export that yields fewer items can never empty the lake.
        """
        deserializer = TypeDeserializer()
        total = 0
        for entry in self.data_files():
            key, expected = entry["dataFileS3Key"], int(entry["itemCount"])
            count = 0
            for number, line in enumerate(self._lines(key, expected), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)["Item"]
                    decoded = {name: deserializer.deserialize(value) for name, value in item.items()}
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ExportError(
                        f"s3://{self.info.bucket}/{key} line {number} is not an export item "
                        f'({{"Item": {{…}}}} in DynamoDB JSON): {type(exc).__name__} {exc}'
                    ) from None
                count += 1
                if count > expected:
                    break
                yield decoded
            if count != expected:
                more = "more than " if count > expected else ""
                raise ExportError(
                    f"{key} holds {more}{expected if more else count} items, its manifest says {expected}"
                )
            total += count

    def _lines(self, key: str, items: int) -> Iterator[bytes]:
        """The data file's lines, decompressed as a stream with a bound: a gzip bomb stops at
        MAX_ITEM_TEXT per item the manifest announces instead of filling memory."""
        body = self._get(key)
        if not key.endswith(".gz"):
            yield from body.splitlines()
            return
        limit = (items + 1) * MAX_ITEM_TEXT
        seen = 0
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
                while line := stream.readline(MAX_ITEM_TEXT + 1):
                    seen += len(line)
                    if seen > limit or (len(line) > MAX_ITEM_TEXT and not line.endswith(b"\n")):
                        raise ExportError(
                            f"s3://{self.info.bucket}/{key} decompresses past {limit:,} bytes for "
                            f"{items} items (at most {MAX_ITEM_TEXT:,} an item): not an export data file"
                        )
                    yield line
        except (EOFError, OSError, zlib.error) as exc:
            raise ExportError(
                f"s3://{self.info.bucket}/{key} is a truncated or corrupt gzip file ({exc})"
            ) from None


def _json_object(text: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ExportError(f"{key} is not a JSON object: not an export manifest")
    return value


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
