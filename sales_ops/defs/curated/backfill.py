"""Backfill from a DynamoDB export: the `dynamodb_export` (no pool) and `orders_backfill` (the
merge, a writer) assets, their job, and the automation that runs it after the reconciliation
check has failed N times in a row (off by default).

The logic lives in `sales_ops.backfill` (the CLI's `sales-ops backfill --wait` runs the same).
"""

import os
import time
from typing import Any

import dagster as dg
from sales_ops.backfill import apply_export, start_export
from sales_ops.backfill.export import wait_export
from sales_ops.defs import internals, policies
from sales_ops.defs.resources import PipelineResource, SqlEngineResource

# Consecutive failed reconciliations before the sensor starts a backfill.
FAILURES_BEFORE_BACKFILL = int(os.environ.get("SALES_OPS_BACKFILL_AFTER_FAILURES", "3"))
RECONCILIATION = dg.AssetCheckKey(dg.AssetKey("orders_latest"), "reconciliation")
EXPORT_TIMEOUT_S = 3600.0  # DynamoDB exports take minutes to an hour
MERGE_MAX_S = 1800.0  # the merge is a compaction: the automation's maximum runtime
EXPORT_ARN = "export_arn"  # the metadata entry orders_backfill reads the export from


class ExportConfig(dg.Config):
    at: str | None = None  # ISO-8601 export time (default: now)
    timeout_s: float = EXPORT_TIMEOUT_S


# The export (minutes to an hour on AWS) only waits on DynamoDB: it takes no writer slot, so
# compaction keeps running meanwhile. Only the merge into the lake is a writer (issue 24, bug 5).
@dg.asset(
    deps=["dynamodb_orders"],
    group_name="curated",
    kinds={"dynamodb", "s3"},
    owners=policies.OWNERS,
    description=(
        "A DynamoDB export (ExportTableToPointInTime) into the bucket, waited for; no writer slot. "
        "orders_backfill applies the latest one."
    ),
)
def dynamodb_export(
    context: dg.AssetExecutionContext, config: ExportConfig, pipeline: PipelineResource
) -> dg.MaterializeResult:
    from datetime import datetime

    at = datetime.fromisoformat(config.at.replace("Z", "+00:00")) if config.at else None
    settings = pipeline.settings()
    started = time.monotonic()

    def progress(info: Any, elapsed: float) -> None:
        context.log.info(f"export {info.export_id}: {info.status} after {elapsed:.0f}s")

    info = wait_export(settings, start_export(settings, at).arn, config.timeout_s, progress)
    return dg.MaterializeResult(
        metadata={
            EXPORT_ARN: info.arn,
            "export_id": info.export_id,
            "export_time": str(info.export_time),
            "items": info.item_count if info.item_count is not None else -1,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


@dg.asset(
    deps=[dynamodb_export, "raw_orders_table"],
    group_name="curated",
    kinds={"dynamodb", "s3"},
    pool=policies.WRITER_POOL,  # it rewrites orders_latest partitions, like the compaction
    owners=policies.OWNERS,
    description=(
        "The latest dynamodb_export applied to the lake: orders missing, different or deleted in "
        "orders_latest are written to orders_baseline and merged by the compaction."
    ),
)
def orders_backfill(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, sql: SqlEngineResource
) -> dg.MaterializeResult:
    event = context.instance.get_latest_materialization_event(dynamodb_export.key)
    materialization = event.asset_materialization if event else None
    if materialization is None or EXPORT_ARN not in materialization.metadata:
        raise dg.Failure("no dynamodb_export to apply: materialize dynamodb_export first (backfill_job does)")
    exported = materialization.metadata
    with sql.engine() as engine:
        report = apply_export(
            pipeline.settings(),
            engine,
            str(exported[EXPORT_ARN].value),
            export_seconds=float(getattr(exported.get("seconds"), "value", 0.0) or 0.0),
        )
    context.log.info(f"backfill: {report}")
    metadata: dict[str, Any] = {
        key: value for key, value in report.as_dict().items() if key != "merge" and value is not None
    }
    if report.merge:
        metadata["partitions_rewritten"] = len(report.merge.partitions_rewritten)
    return dg.MaterializeResult(metadata=metadata)


backfill_job = dg.define_asset_job(
    "backfill_job",
    selection=dg.AssetSelection.assets(dynamodb_export, orders_backfill),
    tags={
        # The reconciliation check runs right after (policies.RECONCILE).
        policies.BACKFILL_TAG: "true",
        # The export's own timeout plus the merge: run monitoring cancels a run past it.
        "dagster/max_runtime": str(int(EXPORT_TIMEOUT_S + MERGE_MAX_S)),
    },
    description="Export the DynamoDB table (no writer slot), then repair orders_latest from it (one slot).",
)


def failure_streak(instance: dg.DagsterInstance, limit: int) -> list[int]:
    """Record ids of the reconciliation's latest evaluations that failed in a row (newest first)."""
    streak = []
    for record in internals.check_history(instance, RECONCILIATION, limit, done_only=True):  # newest first
        if record.status != internals.CHECK_FAILED:
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


defs = dg.Definitions(
    assets=[dynamodb_export, orders_backfill], jobs=[backfill_job], sensors=[reconciliation_failures_sensor]
)
