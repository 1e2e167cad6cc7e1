"""`no_processing_failed` judges the records written since the last acknowledged point, and says
how to acknowledge (issue 24, bug 6): one bad record no longer keeps it red for 30 days."""

from __future__ import annotations

import json
import time

import dagster as dg
from sales_ops.definitions import build_definitions
from sales_ops.defs.resources import resources_for
from sales_ops.settings import ERROR_PREFIX, Settings

ACKNOWLEDGE = {"ops": {"raw_orders_files_no_processing_failed": {"config": {"acknowledge": True}}}}


def error_object(settings: Settings, name: str) -> str:
    """A Firehose processing-failed object (its JSON-lines format) under errors/."""
    line = {"rawData": "e30=", "errorCode": "Lambda.FunctionError", "errorMessage": f"bad {name}"}
    key = f"{ERROR_PREFIX}2026/12/03/09/ack-test-{name}"
    settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=json.dumps(line).encode())
    return key


def evaluate(job: dg.JobDefinition, instance: dg.DagsterInstance, config: dict | None = None):
    result = job.execute_in_process(instance=instance, run_config=config or {}, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_no_processing_failed_judges_only_records_after_the_acknowledged_point(local_stack: Settings) -> None:
    keys = [error_object(local_stack, "one")]
    try:
        with dg.instance_for_test() as instance:
            # Built inside the instance: definitions built before it hold a dead instance weakref.
            job = build_definitions(resources_for(local_stack)).resolve_job_def("processing_failed_job")
            red = evaluate(job, instance)
            assert not red.passed and "acknowledge: true" in (red.description or "")
            assert evaluate(job, instance, ACKNOWLEDGE).passed
            assert evaluate(job, instance).passed, "the acknowledged record no longer fails the check"
            time.sleep(1.1)  # past the acknowledged second
            keys.append(error_object(local_stack, "two"))
            again = evaluate(job, instance)
            assert not again.passed and again.metadata["records"].value == 1
    finally:  # the session's stack is shared: leave no error records behind
        for key in keys:
            local_stack.client("s3").delete_object(Bucket=local_stack.bucket, Key=key)
