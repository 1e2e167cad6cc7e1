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
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from sales_ops.settings import Settings

EXPORT_PREFIX = "exports/orders"  # the export's own S3Prefix in the pipeline's bucket
POLL_S = 2.0


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

    def _get(self, key: str) -> bytes:
        try:
            body = self.settings.client("s3").get_object(Bucket=self.info.bucket, Key=key)["Body"].read()
        except self.settings.client("s3").exceptions.NoSuchKey:
            raise ExportError(f"s3://{self.info.bucket}/{key} is missing: not a complete export") from None
        self.bytes_read += len(body)
        return body

    def summary(self) -> dict[str, Any]:
        return json.loads(self._get(self.info.manifest_key))

    def data_files(self) -> list[dict[str, Any]]:
        summary = self.summary()
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise ExportError(f"export {self.info.export_id} is {summary['outputFormat']}, not DYNAMODB_JSON")
        lines = self._get(summary["manifestFilesS3Key"]).decode().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def items(self) -> Iterator[dict[str, Any]]:
        """Every item, decoded from DynamoDB JSON (numbers as Decimal, exact)."""
        deserializer = TypeDeserializer()
        for entry in self.data_files():
            body = self._get(entry["dataFileS3Key"])
            text = gzip.decompress(body) if entry["dataFileS3Key"].endswith(".gz") else body
            count = 0
            for line in text.splitlines():
                if line.strip():
                    item = json.loads(line)["Item"]
                    yield {name: deserializer.deserialize(value) for name, value in item.items()}
                    count += 1
            if "itemCount" in entry and count != int(entry["itemCount"]):
                raise ExportError(
                    f"{entry['dataFileS3Key']} holds {count} items, its manifest says {entry['itemCount']}"
                )
