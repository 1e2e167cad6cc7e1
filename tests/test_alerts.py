"""Alerts without an emulator: a freshness breach as the FreshnessDaemon records it, the webhook off
when unset, a bad URL refused clearly, and an unreachable receiver that leaves the cursor in place."""

from __future__ import annotations

import json
import time

import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

import dagster as dg
from sales_ops.definitions import defs
from sales_ops.defs.operations.alerts import WEBHOOK_ENV, Alert, AlertDeliveryError, send
from sales_ops.defs.operations.sensors import alerts_sensor
from sales_ops.defs.resources import PipelineResource
from sales_ops.settings import Settings
from tests.harness import free_port
from tests.webhook import webhook_receiver

RESOURCES = {"pipeline": PipelineResource(target="local")}


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    ) as ctx:
        return alerts_sensor.evaluate_tick(ctx)


def breach(instance: dg.DagsterInstance, asset: str, new: FreshnessState, previous: FreshnessState) -> None:
    """What the FreshnessDaemon reports when an asset's freshness state changes."""
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=dg.AssetKey(asset), new_state=new, previous_state=previous, state_change_timestamp=time.time()
        )
    )


def test_a_freshness_breach_is_alerted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with dg.instance_for_test() as instance, webhook_receiver() as receiver:
        monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
        breach(instance, "customer_activity", FreshnessState.PASS, FreshnessState.UNKNOWN)
        cursor = tick(instance, None).cursor  # first tick: where things stand, no alert
        breach(instance, "customer_activity", FreshnessState.FAIL, FreshnessState.PASS)
        cursor = tick(instance, cursor).cursor
        assert json.loads(cursor)["freshness"]["customer_activity"] == "FAIL"
        assert tick(instance, cursor).cursor == cursor  # still failing: no second alert
        (message,) = receiver.messages
        assert message["sales_ops"]["kind"] == "freshness"
        assert message["sales_ops"]["asset"] == "customer_activity"
        assert "freshness policy failed" in message["text"]


def test_no_webhook_when_unset_and_a_clear_error_for_a_bad_url(monkeypatch: pytest.MonkeyPatch) -> None:
    alert = Alert("run failed", "orders_latest", "boom")
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    assert send(Settings(), alert) == []
    monkeypatch.setenv(WEBHOOK_ENV, "file:///etc/passwd")
    with pytest.raises(AlertDeliveryError, match="must be an http"):
        send(Settings(), alert)


def test_an_unreachable_receiver_keeps_the_alert_for_the_next_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{free_port()}/nobody-listens")
    with dg.instance_for_test() as instance:
        cursor = tick(instance, None).cursor
        breach(instance, "orders_latest", FreshnessState.FAIL, FreshnessState.PASS)
        failed = tick(instance, cursor)
        # The cursor moves on; the undelivered (alert, channel) waits in the outbox.
        assert failed.cursor != cursor and "alert delivery failed" in failed.skip_message
        with webhook_receiver() as receiver:
            monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
            tick(instance, failed.cursor)
            tick(instance, failed.cursor)  # delivered once: not again
            (message,) = receiver.messages
        assert message["sales_ops"]["asset"] == "orders_latest"


def test_the_sns_subject_is_one_line_of_printable_ascii_under_100_characters() -> None:
    """SNS refuses a Subject of 100 characters or more, with a line break or a control character
    (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html); `[:100]` gave 100."""
    long = Alert("check failed", "a" * 120, "boom", check="unique_order_id")
    assert len(long.title) > 100 and len(long.subject) == 99 and long.subject.endswith("...")
    odd = Alert("run failed", "orders_latest,\nsales_by_product_hourly\t\x07é", "boom", check="x")
    assert odd.subject == "sales-ops run failed: orders_latest, sales_by_product_hourly - x"
    for alert in (long, odd):
        assert all(0x20 <= ord(c) < 0x7F for c in alert.subject)
