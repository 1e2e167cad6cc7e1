"""The baseline: order states taken from a DynamoDB export, an input of the compaction beside raw_orders.

Glue table `orders_baseline`, JSON lines (gzip) under `baseline/orders/export_id=<export-id>/`,
partitioned by `export_id`. A row has raw_orders' columns (so `{raw_as_latest}` turns it into an
orders_latest candidate like any event): `event_type` SNAPSHOT, `event_time` the export time
truncated to the second, no `sequence_number`, `is_deleted` true for an order the export no longer
holds. Only the orders where the export and the lake disagree get a row (sales_ops/backfill/), so a
second backfill of an unchanged table writes nothing. Kept for good: `--full` rebuilds from raw
events and the baseline together. The merge rule is in curated/sql/compact_orders.sql and
docs/backfill.md.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sales_ops.catalog import glue
from sales_ops.schema import EVENT_COLUMNS, ORDER_ATTRIBUTES, ORDER_COLUMNS
from sales_ops.settings import RAW_PREFIX, Settings

BASELINE_TABLE = "orders_baseline"
BASELINE_PREFIX = "baseline/orders/"
SNAPSHOT = "SNAPSHOT"
ROWS_PER_FILE = 100_000
COLUMNS: list[tuple[str, str]] = [(c.name, sorted(c.raw_types)[0]) for c in EVENT_COLUMNS] + [
    (c.name, c.latest_type) for c in ORDER_COLUMNS
]


def snapshot_time(export_time: datetime) -> str:
    """The export time as the baseline's event_time: whole seconds, ISO-8601 UTC with Z.

    DynamoDB Streams round ApproximateCreationDateTime down to the second, so a change made in the
    export's own second carries that second: truncating the export time lets such a change win.
    """
    return export_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_tables(settings: Settings) -> None:
    """orders_baseline exists; so does raw_orders (created as the crawler would, for a table whose
    rows never streamed: compaction reads both)."""
    if glue.get_table(settings, BASELINE_TABLE) is None:
        location = settings.s3_uri(BASELINE_PREFIX)
        table = glue.json_table_input(
            BASELINE_TABLE, COLUMNS, location, [("export_id", "string")], {"compressionType": "gzip"}
        )
        glue.put_table(settings, table)
    if glue.get_table(settings, glue.RAW_TABLE) is None:
        raw = glue.json_table_input(
            glue.RAW_TABLE, COLUMNS, settings.s3_uri(RAW_PREFIX), list(glue.RAW_PARTITION_KEYS)
        )
        glue.put_table(settings, raw)


def exports(settings: Settings) -> list[str]:
    """Export IDs that have a baseline partition, oldest first (IDs start with epoch milliseconds)."""
    if glue.get_table(settings, BASELINE_TABLE) is None:
        return []
    return sorted(p["Values"][0] for p in glue.list_partitions(settings, BASELINE_TABLE))


def baseline_row(export_id: str, at: str, order: dict[str, Any], deleted: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": f"{export_id}/{order['order_id']}",
        "event_type": SNAPSHOT,
        "event_time": at,
        "sequence_number": None,
        "is_deleted": deleted,
    }
    row.update({name: _json_value(order.get(name)) for name in ORDER_ATTRIBUTES})
    return row


def json_line(row: dict[str, Any]) -> str:
    """One flat row as a JSON line, numbers with their exact decimal text (as the Lambda writes them)."""
    fields = (
        f"{json.dumps(k)}:{str(v) if isinstance(v, Decimal) else json.dumps(v)}" for k, v in row.items()
    )
    return "{" + ",".join(fields) + "}\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


class BaselineWriter:
    """Writes one export's baseline rows in files of ROWS_PER_FILE, then registers the partition.

    Data files first, the Glue partition last (`close`): a crash in between leaves files no query
    sees, and the next backfill of this export writes them again (same names).
    """

    def __init__(self, settings: Settings, export_id: str) -> None:
        ensure_tables(settings)
        self.settings = settings
        self.export_id = export_id
        self.prefix = f"{BASELINE_PREFIX}export_id={export_id}/"
        self.rows = 0
        self.bytes_written = 0
        self._batch: list[str] = []
        self._part = 0

    def add(self, row: dict[str, Any]) -> None:
        self._batch.append(json_line(row))
        self.rows += 1
        if len(self._batch) >= ROWS_PER_FILE:
            self._flush()

    def _flush(self) -> None:
        body = gzip.compress("".join(self._batch).encode(), compresslevel=6, mtime=0)
        key = f"{self.prefix}part-{self._part:05d}.json.gz"
        self.settings.client("s3").put_object(Bucket=self.settings.bucket, Key=key, Body=body)
        self.bytes_written += len(body)
        self._part += 1
        self._batch.clear()

    def close(self) -> None:
        if self._batch:
            self._flush()
        if self.rows:
            table = glue.require_table(self.settings, BASELINE_TABLE)
            entry = glue.partition_input(table, [self.export_id], self.settings.s3_uri(self.prefix))
            glue.put_partitions(self.settings, table, [entry])
