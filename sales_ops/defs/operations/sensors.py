"""Run failures → recorded on the failed run's assets, so they show in the UI."""

from typing import Any

import dagster as dg


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
def run_failure_recorder(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    error = failure_summary(context)
    context.log.error(f"run {run.run_id} of {run.job_name} failed: {error}")
    # An observation per planned asset puts the failure in each asset's event log in the UI.
    for key in planned_assets(context.instance, run.run_id):
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
