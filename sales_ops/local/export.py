"""ExportTableToPointInTime in the emulator, writing what DynamoDB really writes.

moto 5.2.5 accepts the call but differs from AWS (read in moto/dynamodb/models/table_export.py):
it writes one `<prefix>/AWSDynamoDB/<uuid>/data/<uuid>.gz` and no manifests, ignores ExportTime,
answers an ARN of the form `table/<table-arn>/import/<id>` with no ExportTime/StartTime/EndTime
or ExportManifest, and keeps a `threading.Thread` in the backend, which the emulator's pickled
snapshot cannot hold. This patch, applied only inside the emulator process, writes the layout of
AWS's "DynamoDB table export output format" page
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):

    <prefix>/AWSDynamoDB/<export-id>/_started
    <prefix>/AWSDynamoDB/<export-id>/manifest-summary.json      (+ .checksum)
    <prefix>/AWSDynamoDB/<export-id>/manifest-files.json        (+ .checksum), one JSON line per data file
    <prefix>/AWSDynamoDB/<export-id>/data/<random>.json.gz      `{"Item": {…DynamoDB JSON…}}` per line

with the export ID `<epoch-ms>-<8 hex>` and ARN `…:table/<name>/export/<export-id>`.

What it cannot do: moto keeps no history, so the items are the table as it is when the request
arrives, which is at or after ExportTime. That is enough for the backfill's merge rule, which only
needs every change before ExportTime to be in the export (docs/backfill.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

ITEMS_PER_FILE = 50_000  # AWS writes at least one file per partition; several files exercise the reader


class LocalExport:
    """One export, as the backend keeps it (plain attributes: it pickles with the snapshot)."""

    def __init__(self, table: Any, bucket: str, prefix: str, export_time: datetime, account: str) -> None:
        self.table = table  # moto's list_exports reads .table.table_arn
        self.started = datetime.now(UTC)
        self.export_id = f"{int(self.started.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"
        self.arn = f"{table.table_arn}/export/{self.export_id}"
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.export_time = export_time
        self.account = account
        self.status = "IN_PROGRESS"
        self.export_type = "FULL_EXPORT"
        self.ended: datetime | None = None
        self.item_count = 0
        self.billed_bytes = 0
        self.failure: tuple[str, str] | None = None

    @property
    def root(self) -> str:
        root = f"{self.prefix}/AWSDynamoDB" if self.prefix else "AWSDynamoDB"
        return f"{root}/{self.export_id}"

    def response(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ExportArn": self.arn,
            "ExportStatus": self.status,
            "StartTime": self.started,
            "ExportTime": self.export_time,
            "TableArn": self.table.table_arn,
            "TableId": _table_id(self.table),
            "S3Bucket": self.bucket,
            "S3BucketOwner": self.account,
            "S3Prefix": self.prefix,
            "S3SseAlgorithm": "AES256",
            "ExportFormat": "DYNAMODB_JSON",
            "ExportType": self.export_type,
            "ExportManifest": f"{self.root}/manifest-summary.json",
        }
        if self.ended:
            out |= {"EndTime": self.ended, "ItemCount": self.item_count, "BilledSizeBytes": self.billed_bytes}
        if self.failure:
            out |= {"FailureCode": self.failure[0], "FailureMessage": self.failure[1]}
        return out


def _items(table: Any) -> list[dict[str, Any]]:
    """The table's items in DynamoDB JSON, copied now (request threads may be writing)."""
    for attempt in range(1, 6):
        try:
            return [item.to_json(root_attr_name="Item") for item in list(table.all_items())]
        except RuntimeError:  # "dictionary changed size during iteration"
            time.sleep(0.01 * attempt)
    return [item.to_json(root_attr_name="Item") for item in list(table.all_items())]


def _write(export: LocalExport, items: list[dict[str, Any]], s3_backend: Any) -> None:
    def put(key: str, body: bytes) -> str:
        s3_backend.put_object(bucket_name=export.bucket, key_name=key, value=body)
        return hashlib.md5(body, usedforsecurity=False).hexdigest()

    try:
        put(f"{export.root}/_started", b"")
        files = []
        for start in range(0, max(len(items), 1), ITEMS_PER_FILE):
            chunk = items[start : start + ITEMS_PER_FILE]
            text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in chunk)
            key = f"{export.root}/data/{uuid.uuid4().hex}.json.gz"
            md5 = put(key, gzip.compress(text.encode(), compresslevel=6))
            files.append({"itemCount": len(chunk), "md5Checksum": md5, "etag": md5, "dataFileS3Key": key})
            export.billed_bytes += len(text)
        manifest_files = "".join(json.dumps(f) + "\n" for f in files).encode()
        checksum = put(f"{export.root}/manifest-files.json", manifest_files)
        put(f"{export.root}/manifest-files.checksum", checksum.encode())
        export.item_count = len(items)
        export.ended = datetime.now(UTC)
        summary = {
            "version": "2020-06-30",
            "exportArn": export.arn,
            "startTime": _iso(export.started),
            "endTime": _iso(export.ended),
            "tableArn": export.table.table_arn,
            "tableId": _table_id(export.table),
            "exportTime": _iso(export.export_time),
            "s3Bucket": export.bucket,
            "s3Prefix": export.prefix,
            "s3SseAlgorithm": "AES256",
            "s3SseKmsKeyId": None,
            "manifestFilesS3Key": f"{export.root}/manifest-files.json",
            "billedSizeBytes": export.billed_bytes,
            "itemCount": export.item_count,
            "outputFormat": "DYNAMODB_JSON",
            "exportType": export.export_type,
        }
        body = json.dumps(summary).encode()
        checksum = put(f"{export.root}/manifest-summary.json", body)
        put(f"{export.root}/manifest-summary.checksum", checksum.encode())
        export.status = "COMPLETED"
    except Exception as exc:  # reported through DescribeExport, as AWS does
        export.failure = ("UNKNOWN", str(exc))
        export.ended = datetime.now(UTC)
        export.status = "FAILED"


def _table_id(table: Any) -> str:
    """moto keeps no TableId: a stable one from the ARN and creation time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table.table_arn}@{table.created_at.isoformat()}"))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _export_time(value: Any) -> datetime:
    """ExportTime as moto hands it over: its parser gives a datetime (moto 5.2 parses bodies
    through the botocore model); a raw body would give epoch seconds. `float()` of the datetime
    was an HTTP 500 that boto3 retried 5 times (issue 23)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def install() -> None:
    """Replace moto's ExportTableToPointInTime with one that writes AWS's layout."""
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.exceptions import (
        ERROR_TYPE_PREFIX,
        MockValidationException,
        PointInTimeRecoveryUnavailable,
    )
    from moto.dynamodb.responses import DynamoHandler

    def export_table_to_point_in_time(self: DynamoHandler) -> Any:
        from moto.core.responses import ActionResult
        from moto.s3.models import s3_backends

        backend = self.dynamodb_backend
        table_arn = self.body["TableArn"]
        table = next((t for t in backend.tables.values() if t.table_arn == table_arn), None)
        if table is None:
            from moto.dynamodb.exceptions import TableNotFoundException

            raise TableNotFoundException(name=table_arn)
        pitr = table.continuous_backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        if pitr != "ENABLED":
            raise PointInTimeRecoveryUnavailable(name=table.name)
        if self.body.get("ExportType", "FULL_EXPORT") != "FULL_EXPORT":
            raise MockValidationException("only FULL_EXPORT is emulated")
        now = datetime.now(UTC)
        export_time = now
        if self.body.get("ExportTime") is not None:
            export_time = _export_time(self.body["ExportTime"])
            created = table.created_at.replace(tzinfo=table.created_at.tzinfo or UTC)
            if export_time > now or export_time < created:
                raise JsonRESTError(
                    ERROR_TYPE_PREFIX + "InvalidExportTimeException",
                    "The specified ExportTime is outside of the point in time recovery window.",
                )
        account = self.body.get("S3BucketOwner") or backend.account_id
        bucket = self.body["S3Bucket"]
        s3_backend = s3_backends[account]["aws"]
        if bucket not in s3_backend.buckets:
            raise MockValidationException(f"S3 bucket {bucket} does not exist")
        export = LocalExport(table, bucket, self.body.get("S3Prefix") or "", export_time, account)
        items = _items(table)  # the state now: the export's content
        backend.table_exports[export.arn] = export  # type: ignore[assignment]  # moto's own type, replaced
        threading.Thread(target=_write, args=(export, items, s3_backend), daemon=True).start()
        return ActionResult({"ExportDescription": export.response()})

    def describe_export(self: DynamoHandler) -> Any:
        from moto.core.responses import ActionResult

        export = self.dynamodb_backend.table_exports.get(self.body["ExportArn"])
        if export is None:  # moto raised a KeyError (HTTP 500); AWS answers ExportNotFoundException
            raise JsonRESTError(ERROR_TYPE_PREFIX + "ExportNotFoundException", "Export not found")
        return ActionResult({"ExportDescription": export.response()})

    DynamoHandler.export_table_to_point_in_time = export_table_to_point_in_time  # type: ignore[method-assign]
    DynamoHandler.describe_export = describe_export  # type: ignore[method-assign]
