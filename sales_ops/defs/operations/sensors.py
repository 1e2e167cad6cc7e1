"""What must leave Dagster: failed runs, failing ERROR checks, freshness breaches.

- `run_failure_recorder`: a failed run is recorded on the assets it was building (an observation
  with the error, in each asset's event log) and alerted.
- `alerts_sensor`: reads the event log after its cursor (a storage id) for check evaluations that
  failed with ERROR severity and for freshness-state changes to FAIL (the FreshnessDaemon's
  events), and alerts each one once.
Alerts go where `operations.alerts` says (webhook, SNS on aws).
"""

from typing import Any

import dagster as dg

from sales_ops.defs.operations.alerts import Alert, AlertDeliveryError, send
from sales_ops.defs.resources import PipelineResource

ALERTS_INTERVAL_S = 30
EVENTS_PER_TICK = 200
# A run failed only by a blocking check is alerted once, by the check (alerts_sensor).
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"


def planned_assets(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetKey]:
    """The assets a run meant to materialize (from its planned-materialization events)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    keys = {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}
    return sorted((key for key in keys if key is not None), key=lambda key: key.to_user_string())


def _root_cause(error: Any) -> str:
    """The innermost error of a chain: the user's exception, not Dagster's step wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def _failed_by_checks_only(context: dg.RunFailureSensorContext) -> bool:
    errors = [
        event.event_specific_data.error
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    return bool(errors) and all(error.cls_name == CHECK_FAILED_ERROR for error in errors)


def failure_summary(context: dg.RunFailureSensorContext) -> str:
    """The failed steps' root errors, or the run's own failure message."""
    steps = [
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    return "\n".join(steps) or (context.failure_event.message or "run failed")


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run on the assets it was building, with the error.",
)
def run_failure_recorder(context: dg.RunFailureSensorContext, pipeline: PipelineResource) -> None:
    run = context.dagster_run
    error = failure_summary(context)
    context.log.error(f"run {run.run_id} of {run.job_name} failed: {error}")
    assets = planned_assets(context.instance, run.run_id)
    # An observation per planned asset puts the failure in each asset's event log in the UI.
    for key in assets:
        context.instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=key,
                description=f"run {run.run_id[:8]} of {run.job_name} failed",
                metadata={
                    "failed_run_id": run.run_id,
                    "job": run.job_name,
                    "error": dg.MetadataValue.md(f"```\n{error[:4000]}\n```"),
                },
            )
        )
    if not _failed_by_checks_only(context):
        names = ", ".join(key.to_user_string() for key in assets) or run.job_name
        send(pipeline.settings(), Alert("run failed", names, error, run_id=run.run_id))


def check_alert(record: dg.EventLogRecord) -> Alert | None:
    """An alert for a check evaluation that failed with ERROR severity, else None."""
    event = record.event_log_entry.dagster_event
    evaluation = event.event_specific_data if event else None
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
        return None
    if evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return None
    reason = evaluation.description or "failed"
    findings = evaluation.metadata.get("findings")
    if findings is not None:
        reason += f"\n{findings.value}"
    return Alert(
        "check failed",
        evaluation.asset_key.to_user_string(),
        reason,
        check=evaluation.check_name,
        run_id=record.event_log_entry.run_id or None,
    )


def freshness_alert(record: dg.EventLogRecord) -> Alert | None:
    """An alert for an asset whose freshness state turned FAIL, else None."""
    event = record.event_log_entry.dagster_event
    change = event.asset_freshness_state_change_data if event else None
    if change is None or change.new_state.value != "FAIL":
        return None
    return Alert(
        "freshness",
        change.key.to_user_string(),
        f"freshness policy failed (was {change.previous_state.value}): not rebuilt within its window",
    )


WATCHED = {
    dg.DagsterEventType.ASSET_CHECK_EVALUATION: check_alert,
    dg.DagsterEventType.FRESHNESS_STATE_CHANGE: freshness_alert,
}


def _latest_storage_id(instance: dg.DagsterInstance) -> int:
    latest = [
        instance.get_event_records(dg.EventRecordsFilter(event_type=event_type), limit=1)
        for event_type in WATCHED
    ]
    return max((records[0].storage_id for records in latest if records), default=0)


@dg.sensor(
    minimum_interval_seconds=ALERTS_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Failing ERROR checks and freshness breaches → an alert each (webhook, SNS on aws).",
)
def alerts_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource) -> dg.SensorResult:
    if context.cursor is None:  # first tick: alert from now on, not the whole history
        return dg.SensorResult(cursor=str(_latest_storage_id(context.instance)))
    after = int(context.cursor)
    records = [
        (record, to_alert)
        for event_type, to_alert in WATCHED.items()
        for record in context.instance.get_event_records(
            dg.EventRecordsFilter(event_type=event_type, after_cursor=after),
            limit=EVENTS_PER_TICK,
            ascending=True,
        )
    ]
    records.sort(key=lambda pair: pair[0].storage_id)
    sent = 0
    for record, to_alert in records:
        alert = to_alert(record)
        if alert is not None:
            try:
                send(pipeline.settings(), alert)
            except AlertDeliveryError as exc:
                # The cursor stays before this alert: the next tick tries it again, nothing is lost.
                context.log.error(str(exc))
                return dg.SensorResult(cursor=str(after), skip_reason=f"alert delivery failed: {exc}")
            sent += 1
        after = record.storage_id
    return dg.SensorResult(cursor=str(after), skip_reason=None if sent else "nothing to alert")
