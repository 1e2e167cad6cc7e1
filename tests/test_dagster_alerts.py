"""The alerts sensor's first alert for a check that had never run when the sensor started (issue
24, bug 4): `no_processing_failed` usually runs for the first time exactly when it fails."""

from __future__ import annotations

import pytest

import dagster as dg
from sales_ops.definitions import defs
from sales_ops.defs.operations.alerts import WEBHOOK_ENV
from sales_ops.defs.operations.sensors import alerts_sensor
from sales_ops.defs.resources import PipelineResource
from tests.webhook import webhook_receiver

RESOURCES = {"pipeline": PipelineResource(target="local")}


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    ) as ctx:
        return alerts_sensor.evaluate_tick(ctx)


def failing_run(instance: dg.DagsterInstance) -> None:
    """A run in which `raw_orders_files:no_processing_failed` fails with ERROR severity (the check's
    key, evaluated by a stand-in body: the sensor reads only the stored execution record)."""

    @dg.asset(name="raw_orders_files")
    def raw_orders_files() -> None:
        return None

    @dg.asset_check(asset=raw_orders_files, name="no_processing_failed")
    def no_processing_failed() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, description="2 processing-failed record(s)")

    dg.materialize([raw_orders_files, no_processing_failed], instance=instance, raise_on_error=False)


def test_the_first_failure_of_a_check_that_never_ran_is_alerted(monkeypatch: pytest.MonkeyPatch) -> None:
    with dg.instance_for_test() as instance, webhook_receiver() as receiver:
        monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
        cursor = tick(instance, None).cursor  # the sensor starts: no check has run yet
        failing_run(instance)
        tick(instance, cursor)
        (message,) = receiver.messages
        assert message["sales_ops"]["check"] == "no_processing_failed"
        assert "2 processing-failed record(s)" in message["text"]
