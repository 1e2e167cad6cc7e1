"""What must leave Dagster: failed runs, failing ERROR checks, freshness breaches.

- `run_failure_recorder`: a failed run is recorded on the assets it was building (an observation
  with the error, in each asset's event log) and alerted.
- `alerts_sensor`: reads, after its cursor, each check's execution records (alerting those that
  failed with ERROR severity) and each asset's freshness state (alerting a change to FAIL, as
  the FreshnessDaemon records it), and alerts each one once.
Alerts go where `operations.alerts` says (webhook, SNS on aws).
"""

import json
import time
from typing import Any

import dagster as dg
from sales_ops.defs import internals
from sales_ops.defs.operations.alerts import Alert, deliver
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


def _step_errors(context: dg.RunFailureSensorContext) -> list[tuple[str | None, Any]]:
    """(step key, error) of every failed step that carries one."""
    out = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data.error:
            out.append((event.step_key, data.error))
    return out


def _failed_by_checks_only(context: dg.RunFailureSensorContext) -> bool:
    errors = [error for _, error in _step_errors(context)]
    return bool(errors) and all(error.cls_name == CHECK_FAILED_ERROR for error in errors)


def failure_summary(context: dg.RunFailureSensorContext) -> str:
    """The failed steps' root errors, or the run's own failure message."""
    steps = [f"{step}: {_root_cause(error)}" for step, error in _step_errors(context)]
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
        alert = Alert("run failed", names, error, run_id=run.run_id)
        for problem in deliver(pipeline.settings(), context.instance, [alert], "run_failure_recorder"):
            context.log.error(problem)


def check_alert(evaluation: dg.AssetCheckEvaluation, run_id: str | None) -> Alert | None:
    """An alert for a check evaluation that failed with ERROR severity, else None."""
    if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
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
        run_id=run_id,
    )


def freshness_alert(asset: dg.AssetKey, previous: str | None) -> Alert:
    return Alert(
        "freshness",
        asset.to_user_string(),
        f"freshness policy failed (was {previous or 'unknown'}): not rebuilt within its time window",
    )


# A check execution still PLANNED this long after it started belongs to a run that died; the
# cursor moves past it rather than waiting for ever.
PLANNED_GIVE_UP_S = 3600


def _new_check_alerts(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, after: int | None, first_tick: bool
) -> tuple[list[Alert], int | None]:
    """Alerts for the executions of `key` newer than record id `after` (None: all of them), and the
    id to resume from. On the sensor's `first_tick` it only notes where things stand.

    Read per check from the asset-check execution records: unlike a cross-run event-log query,
    this works on every event log storage, sqlite's run-sharded one included.
    """
    history = internals.check_history(instance, key, limit=EVENTS_PER_TICK)
    alerts: list[Alert] = []
    for record in sorted(history, key=lambda r: r.id):
        if after is not None and record.id <= after:
            continue
        if record.status == internals.CHECK_PLANNED:
            if time.time() - record.create_timestamp < PLANNED_GIVE_UP_S:
                break  # not evaluated yet: resume here next tick
        elif not first_tick and record.evaluation is not None:
            alert = check_alert(record.evaluation, record.run_id)
            if alert:
                alerts.append(alert)
        after = record.id
    return alerts, after


@dg.sensor(
    minimum_interval_seconds=ALERTS_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Failing ERROR checks and freshness breaches → an alert each (webhook, SNS on aws).",
)
def alerts_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource) -> dg.SensorResult:
    """Cursor: the last check-execution record id seen per check, and each asset's last freshness
    state. The first tick only records where things stand: alerts are for what happens after."""
    state = json.loads(context.cursor) if context.cursor else {"checks": {}, "freshness": {}}
    first_tick = context.cursor is None
    assert context.repository_def is not None  # a sensor always runs inside its repository
    graph = context.repository_def.asset_graph
    pending: list[Alert] = []
    for key in sorted(graph.asset_check_keys, key=str):
        name = key.to_user_string()
        # A check with no position yet (it had never run when the cursor was written) is read from
        # its first execution: that is often the very one that fails (issue 24, bug 4).
        alerts, after = _new_check_alerts(context.instance, key, state["checks"].get(name), first_tick)
        pending += alerts
        if after is not None:
            state["checks"][name] = after
    fresh_keys = [key for key in graph.get_all_asset_keys() if graph.get(key).freshness_policy]
    for asset_key, record in context.instance.get_freshness_state_records(fresh_keys).items():
        name, now = asset_key.to_user_string(), record.freshness_state.value
        previous = state["freshness"].get(name)
        if now == "FAIL" and previous != "FAIL" and not first_tick:
            pending.append(freshness_alert(asset_key, previous))
        state["freshness"][name] = now
    # Per channel: a failed channel is retried from the outbox at the next tick, the others are not
    # sent the alert again, and the cursor moves on.
    problems = deliver(pipeline.settings(), context.instance, pending, "alerts_sensor")
    for problem in problems:
        context.log.error(problem)
    skip = f"alert delivery failed: {'; '.join(problems)}" if problems else None
    return dg.SensorResult(
        cursor=json.dumps(state), skip_reason=skip or (None if pending else "nothing to alert")
    )
