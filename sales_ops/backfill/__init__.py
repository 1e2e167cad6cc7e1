"""`sales-ops backfill`: baseline and repair of the lake from a DynamoDB export (docs/backfill.md).

One run, the same on both targets:
1. ExportTableToPointInTime into the bucket (`--at` picks the time; default now), then
   DescribeExport until it completes (progress shown); or an export given by ARN;
2. compaction, so orders_latest holds every raw event already in S3;
3. the export read from S3 (never a table scan) and compared with the lake, order by order, with
   the reconciliation's own comparison: orders missing from the lake, different, or in the lake but
   not in the export (deleted as of the export; only those whose lake state predates the export);
4. one baseline row for each of those in `orders_baseline` (sales_ops/curated/baseline.py);
5. compaction again, which merges the baseline with the change events (curated/sql/compact_orders.sql).
A second backfill of an unchanged table finds nothing to repair and writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sales_ops.backfill.export import (
    ExportError,
    ExportInfo,
    ExportReader,
    describe_export,
    start_export,
    wait_export,
)
from sales_ops.curated import baseline
from sales_ops.curated.compaction import CompactionReport, compact
from sales_ops.curated.tables import ensure_tables as ensure_curated_tables
from sales_ops.quality.reconciliation import lake_state, reconcile
from sales_ops.query import SqlEngine
from sales_ops.settings import Settings

__all__ = ["BackfillReport", "ExportError", "ExportInfo", "apply_export", "backfill", "start_export"]


@dataclass
class BackfillReport:
    export_arn: str
    export_id: str
    export_time: str  # the baseline's time: the export time truncated to the second
    export_items: int
    missing: int
    extra: int
    different: int
    newer_than_export: int
    rows_written: int
    bytes_read: int  # export files and manifests from S3, plus what the SQL engine scanned
    bytes_written: int  # baseline files, plus what the merge wrote
    export_seconds: float
    seconds: float
    merge: CompactionReport | None = None

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def backfill(
    settings: Settings,
    engine: SqlEngine,
    at: datetime | None = None,
    timeout: float = 3600.0,
    on_progress: Callable[[ExportInfo, float], None] | None = None,
) -> BackfillReport:
    """Export the table (as of `at`), wait for the export, and apply it to the lake."""
    started = time.monotonic()
    info = start_export(settings, at)
    info = wait_export(settings, info.arn, timeout, on_progress)
    return apply_export(settings, engine, info, export_seconds=time.monotonic() - started)


def apply_export(
    settings: Settings, engine: SqlEngine, info: ExportInfo | str, export_seconds: float = 0.0
) -> BackfillReport:
    """Steps 2 to 5 for a completed export (an ExportInfo, or its ARN)."""
    started = time.monotonic()
    if isinstance(info, str):
        info = describe_export(settings, info)
    if info.status != "COMPLETED":
        raise ExportError(f"export {info.export_id} is {info.status}, not COMPLETED: wait for it first")
    baseline.ensure_tables(settings)
    ensure_curated_tables(settings)
    before = compact(settings, engine)  # orders_latest up to date with what S3 already holds
    lake, lake_bytes = lake_state(settings, engine)
    scanned = before.bytes_read + lake_bytes
    at = baseline.snapshot_time(info.export_time)
    reader = ExportReader(settings, info)
    writer = baseline.BaselineWriter(settings, info.export_id)

    def keep(kind: str, order: dict[str, Any]) -> None:
        writer.add(baseline.baseline_row(info.export_id, at, order, deleted=kind == "extra"))

    result = reconcile(reader.items(), lake, as_of=at, on_mismatch=keep)
    writer.close()
    merge = compact(settings, engine) if writer.rows else None
    return BackfillReport(
        export_arn=info.arn,
        export_id=info.export_id,
        export_time=at,
        export_items=result.table_orders,
        missing=len(result.missing),
        extra=len(result.extra),
        different=len(result.different),
        newer_than_export=len(result.newer),
        rows_written=writer.rows,
        bytes_read=reader.bytes_read + scanned + (merge.bytes_read if merge else 0),
        bytes_written=writer.bytes_written + before.bytes_written + (merge.bytes_written if merge else 0),
        export_seconds=round(export_seconds, 3),
        seconds=round(export_seconds + time.monotonic() - started, 3),
        merge=merge,
    )
