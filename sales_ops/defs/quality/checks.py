"""Data-quality checks in the UI. Each check's logic lives once, in `sales_ops.quality` (the CLI's
`sales-ops check` runs the same functions); this module adds the Dagster side: the asset it belongs
to, severity, and the findings as metadata so a failure shows its reasons.
"""

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from sales_ops import quality
from sales_ops.defs import internals, policies
from sales_ops.defs.resources import DynamoDBResource, PipelineResource, SqlEngineResource
from sales_ops.stream_lag import StageLag

# Raw data older than this means the stream has stopped (or the load has): a warning, not an error.
FRESHNESS_MAX_AGE_S = float(os.environ.get("SALES_OPS_FRESHNESS_MAX_AGE_S", "3600"))
MAX_LISTED = 20  # findings shown inline; the full list is in the JSON metadata


def _metadata_value(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(value if isinstance(value, dict) else list(value))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _finding(item: Any) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{key}: {value}" for key, value in item.items())
    return str(item)


def _findings_markdown(details: dict[str, Any]) -> str | None:
    """The listed findings (reasons, offending ids, missing columns) as bullets, when there are any."""
    items = [
        f"- **{key}**: {_finding(item)}"
        for key, value in details.items()
        if isinstance(value, list | tuple)
        for item in list(value)[:MAX_LISTED]
    ]
    return "\n".join(items) or None


def to_check_result(
    outcome: quality.CheckOutcome,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    extra: dict[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """A quality outcome as Dagster's check result: summary as description, details (and `extra`)
    as metadata."""
    details = outcome.details
    metadata: dict[str, Any] = {"summary": outcome.summary, **(extra or {})}
    metadata.update({key: _metadata_value(value) for key, value in details.items()})
    findings = _findings_markdown(details)
    if findings and not outcome.passed:
        metadata["findings"] = dg.MetadataValue.md(findings)
    return dg.AssetCheckResult(
        passed=bool(outcome.passed), description=outcome.summary, metadata=metadata, severity=severity
    )


@dg.asset_check(
    asset="raw_orders_table",
    description="raw_orders has the contract's columns and types.",
    automation_condition=policies.WITH_ASSET,
)
def raw_schema(pipeline: PipelineResource) -> dg.AssetCheckResult:
    return to_check_result(quality.check_raw_schema(pipeline.settings()))


class ProcessingFailedConfig(dg.Config):
    # True: every processing-failed record so far is acknowledged (fixed, replayed or accepted);
    # from then on the check judges only records written later.
    acknowledge: bool = False


ACKNOWLEDGED = "acknowledged_through"  # metadata entry carried from one evaluation to the next
HOW_TO_ACKNOWLEDGE = (
    "once handled, acknowledge them: run this check with config `acknowledge: true` "
    "(Launchpad of processing_failed_job)"
)


def acknowledged_through(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> datetime | None:
    """The last acknowledged point: carried in each evaluation's metadata (the newest one holding it)."""
    for record in internals.check_history(instance, key, limit=20, done_only=True):
        entry = record.evaluation.metadata.get(ACKNOWLEDGED) if record.evaluation else None
        if isinstance(entry, dg.TimestampMetadataValue):
            return datetime.fromtimestamp(entry.value, UTC)
    return None


@dg.asset_check(
    asset="raw_orders_files",
    description=(
        "No Firehose processing-failed records under errors/ since the last acknowledged point; fails "
        "with the reasons found. Config acknowledge: true marks all records so far as handled."
    ),
)
def no_processing_failed(
    context: dg.AssetCheckExecutionContext, config: ProcessingFailedConfig, pipeline: PipelineResource
) -> dg.AssetCheckResult:
    since = acknowledged_through(context.instance, context.check_specs[0].key)
    if config.acknowledge:
        # S3's LastModified has whole seconds: the acknowledgement covers the current second.
        since = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        summary = f"processing-failed records before {since:%Y-%m-%d %H:%M:%S} UTC acknowledged"
        outcome = quality.CheckOutcome("no_processing_failed", True, summary)
    else:
        outcome = quality.check_no_processing_failed(pipeline.settings(), since=since)
        if not outcome.passed:
            outcome.summary += f"; {HOW_TO_ACKNOWLEDGE}"
    extra = {ACKNOWLEDGED: dg.MetadataValue.timestamp(since)} if since else None
    return to_check_result(outcome, extra=extra)


@dg.asset_check(
    asset="raw_orders_files",
    description="No raw object quarantined by compaction as unreadable (quarantine/), with reasons.",
)
def no_quarantined_objects(pipeline: PipelineResource) -> dg.AssetCheckResult:
    return to_check_result(quality.check_no_quarantined(pipeline.settings()))


class FreshnessConfig(dg.Config):
    max_age_s: float = FRESHNESS_MAX_AGE_S


# Arrival, not compaction: the curated tables have FreshnessPolicy objects of their own.
@dg.asset_check(
    asset="raw_orders_files",
    description="Newest raw object at most max_age_s old (default SALES_OPS_FRESHNESS_MAX_AGE_S or 1 h).",
    automation_condition=policies.every("*/15 * * * *", "every 15 minutes"),
)
def freshness(config: FreshnessConfig, pipeline: PipelineResource) -> dg.AssetCheckResult:
    outcome = quality.check_freshness(pipeline.settings(), config.max_age_s)
    return to_check_result(outcome, dg.AssetCheckSeverity.WARN)


# Blocking: rollups must not be built on a table with duplicate orders.
@dg.asset_check(
    asset="orders_latest",
    blocking=True,
    description="order_id is unique in orders_latest.",
    automation_condition=policies.WITH_ASSET,
)
def unique_order_id(sql: SqlEngineResource) -> dg.AssetCheckResult:
    with sql.engine() as engine:
        return to_check_result(quality.check_unique_order_id(engine))


@dg.asset_check(
    asset="orders_latest",
    description="Amounts are positive and order_total = quantity * unit_price on every row.",
    automation_condition=policies.WITH_ASSET,
)
def amounts(sql: SqlEngineResource) -> dg.AssetCheckResult:
    with sql.engine() as engine:
        return to_check_result(quality.check_amounts(engine))


# Not blocking: a rejected change never reaches orders_latest, so the rollups stay right; the
# check names the orders and reasons until a later good change or a delete supersedes them.
@dg.asset_check(
    asset="orders_latest",
    description=(
        "No change compaction rejected for breaking the contract (docs/design.md §2.1) is outstanding: "
        "lists the order ids and reasons."
    ),
    automation_condition=policies.WITH_ASSET,
)
def rejected_changes(sql: SqlEngineResource) -> dg.AssetCheckResult:
    with sql.engine() as engine:
        return to_check_result(quality.check_rejected(engine))


def in_flight(lags: list[StageLag]) -> list[str]:
    """The stream stages that still hold changes (records pending, or an age behind)."""
    return [lag.stage for lag in lags if (lag.pending_records or 0) > 0 or (lag.age_s or 0) > 0]


# A DynamoDB scan, so on its own cadence (hourly), not with every compaction. While changes are
# still in flight a difference is expected: WARN. Once the stream has caught up, a difference is a
# real one: ERROR (and an alert).
@dg.asset_check(
    asset="orders_latest",
    additional_deps=["orders_backfill"],  # so that RECONCILE sees a backfill's update
    description=(
        "orders_latest holds exactly the items of a DynamoDB scan (same orders, same values); "
        "WARN while the stream still has changes in flight, ERROR once it has caught up."
    ),
    automation_condition=policies.RECONCILE,
)
def reconciliation(
    pipeline: PipelineResource, sql: SqlEngineResource, dynamodb: DynamoDBResource
) -> dg.AssetCheckResult:
    with sql.engine() as engine:
        outcome = quality.check_reconciliation(pipeline.settings(), engine)
    lagging = in_flight(dynamodb.monitor().lag())
    outcome.details["stream_in_flight"] = lagging
    severity = dg.AssetCheckSeverity.WARN if lagging else dg.AssetCheckSeverity.ERROR
    if lagging and not outcome.passed:
        outcome.summary += f" (changes still in flight in: {', '.join(lagging)})"
    return to_check_result(outcome, severity)


ALL_CHECKS = [
    raw_schema,
    no_processing_failed,
    no_quarantined_objects,
    freshness,
    unique_order_id,
    amounts,
    rejected_changes,
    reconciliation,
]

quality_job = dg.define_asset_job(
    "quality_job",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Every data-quality check, on the tables as they are now.",
)

processing_failed_job = dg.define_asset_job(
    "processing_failed_job",
    selection=dg.AssetSelection.checks(no_processing_failed),
    description="The processing-failed check alone (run by its sensor when new error objects appear).",
)
