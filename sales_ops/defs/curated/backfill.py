"""Backfill from a DynamoDB export: the `orders_backfill` asset, its job, and the automation that
runs it after the reconciliation check has failed N times in a row (off by default).

The logic lives in `sales_ops.backfill` (the CLI's `sales-ops backfill --wait` runs the same).
"""

import os
from typing import Any

import dagster as dg
from sales_ops.backfill import backfill
from sales_ops.defs import policies
from sales_ops.defs.resources import PipelineResource, SqlEngineResource

# Consecutive failed reconciliations before the sensor starts a backfill.
FAILURES_BEFORE_BACKFILL = int(os.environ.get("SALES_OPS_BACKFILL_AFTER_FAILURES", "3"))
RECONCILIATION = dg.AssetCheckKey(dg.AssetKey("orders_latest"), "reconciliation")


class BackfillConfig(dg.Config):
    at: str | None = None  # ISO-8601 export time (default: now)
    timeout_s: float = 3600.0


@dg.asset(
    deps=["dynamodb_orders", "raw_orders_table"],
    group_name="curated",
    kinds={"dynamodb", "s3"},
    pool=policies.WRITER_POOL,  # it rewrites orders_latest partitions, like the compaction
    owners=policies.OWNERS,
    description=(
        "Baseline from a DynamoDB export (ExportTableToPointInTime): orders missing, different or "
        "deleted in orders_latest are written to orders_baseline and merged by the compaction."
    ),
)
def orders_backfill(
    context: dg.AssetExecutionContext,
    config: BackfillConfig,
    pipeline: PipelineResource,
    sql: SqlEngineResource,
) -> dg.MaterializeResult:
    from datetime import datetime

    at = datetime.fromisoformat(config.at.replace("Z", "+00:00")) if config.at else None

    def progress(info: Any, elapsed: float) -> None:
        context.log.info(f"export {info.export_id}: {info.status} after {elapsed:.0f}s")

    with sql.engine() as engine:
        report = backfill(pipeline.settings(), engine, at, config.timeout_s, on_progress=progress)
    context.log.info(f"backfill: {report}")
    metadata: dict[str, Any] = {
        key: value for key, value in report.as_dict().items() if key != "merge" and value is not None
    }
    if report.merge:
        metadata["partitions_rewritten"] = len(report.merge.partitions_rewritten)
    return dg.MaterializeResult(metadata=metadata)


backfill_job = dg.define_asset_job(
    "backfill_job",
    selection=dg.AssetSelection.assets(orders_backfill),
    # Tagged so that the reconciliation check runs right after (policies.RECONCILE).
    tags={policies.BACKFILL_TAG: "true"},
    description="Export the DynamoDB table and repair orders_latest from it.",
)


def failure_streak(instance: dg.DagsterInstance, limit: int) -> list[int]:
    """Record ids of the reconciliation's latest evaluations that failed in a row (newest first)."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    records = instance.event_log_storage.get_asset_check_execution_history(
        RECONCILIATION, limit=limit, status=done
    )
    streak = []
    for record in records:  # newest first
        if record.status != AssetCheckExecutionRecordStatus.FAILED:
            break
        streak.append(record.id)
    return streak


@dg.sensor(
    job=backfill_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,  # off by default: a backfill exports the whole table
    description=(
        "Runs a backfill once the reconciliation check has failed SALES_OPS_BACKFILL_AFTER_FAILURES "
        "(default 3) times in a row, and again only after as many further failures."
    ),
)
def reconciliation_failures_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    needed = FAILURES_BEFORE_BACKFILL
    streak = failure_streak(context.instance, needed)
    if len(streak) < needed:
        return dg.SensorResult(
            skip_reason=f"reconciliation failed {len(streak)} time(s) in a row (< {needed})"
        )
    # The cursor is the newest failure a backfill was started for: the N failures counted now must
    # all be later than it, so one streak of failures starts one backfill, not one per tick.
    if context.cursor and streak[-1] <= int(context.cursor):
        return dg.SensorResult(skip_reason="a backfill was already started for these failures")
    request = dg.RunRequest(
        run_key=f"reconciliation-failed-{streak[0]}", tags={"sales_ops/trigger": "reconcile"}
    )
    return dg.SensorResult(run_requests=[request], cursor=str(streak[0]))


defs = dg.Definitions(assets=[orders_backfill], jobs=[backfill_job], sensors=[reconciliation_failures_sensor])
