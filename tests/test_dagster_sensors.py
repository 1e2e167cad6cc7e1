"""Sensors against the real emulator: the raw-objects cursor and its observations, and the
run-failure recorder with its alert.

(The processing-failed sensor is exercised end to end, with a real poison record, in
test_dagster_checks.py, on a stack of its own: error objects never go away.)
"""

from __future__ import annotations

import pytest

import dagster as dg
from sales_ops.defs.ingest.listing import list_new_objects
from sales_ops.defs.ingest.load import order_load
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.operations.alerts import WEBHOOK_ENV
from sales_ops.defs.operations.sensors import run_failure_recorder
from sales_ops.defs.resources import resources_for
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.raw_objects import delivery_position
from sales_ops.settings import RAW_PREFIX, Settings
from tests.webhook import webhook_receiver


def raw_keys(settings: Settings) -> list[str]:
    pages = settings.client("s3").get_paginator("list_objects_v2")
    return [
        o["Key"]
        for p in pages.paginate(Bucket=settings.bucket, Prefix=RAW_PREFIX)
        for o in p.get("Contents", [])
    ]


def tick(settings: Settings, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources_for(settings)
    ) as context:
        return raw_objects_sensor.evaluate_tick(context)


def load_and_deliver(settings: Settings, orders: int, seed: int) -> None:
    run_load(settings, orders, rate=0, seed=seed)
    wait_delivered(settings, timeout=60)


@pytest.fixture(scope="module")
def loaded(local_stack: Settings) -> Settings:
    load_and_deliver(local_stack, 20, seed=101)
    return local_stack


def test_cursor_advances_and_old_objects_never_retrigger(loaded: Settings) -> None:
    with dg.instance_for_test() as instance:
        first = tick(loaded, instance, None)
        # An observation of the raw files, not a run: the automation decides what it asks for.
        assert first.run_requests == []
        (observation,) = first.asset_events
        assert observation.asset_key == dg.AssetKey("raw_orders_files")
        newest = max(raw_keys(loaded), key=delivery_position)
        assert first.cursor == delivery_position(newest)
        assert observation.tags["dagster/data_version"] == newest

        again = tick(loaded, instance, first.cursor)
        assert again.asset_events == [] and again.run_requests == []
        assert "no new raw objects" in again.skip_message

        load_and_deliver(loaded, 10, seed=102)
        newer = [delivery_position(key) for key in raw_keys(loaded) if delivery_position(key) > first.cursor]
        assert newer, "the second load wrote no new raw object"
        third = tick(loaded, instance, first.cursor)
        (newer_observation,) = third.asset_events
        assert third.cursor == max(newer) > first.cursor
        # Only what is new was listed: the count the sensor saw is the count after the cursor.
        assert newer_observation.metadata["new_objects"].value == len(newer)


def test_listing_starts_after_the_cursor_and_pages(loaded: Settings) -> None:
    keys = sorted(raw_keys(loaded))
    assert len(keys) >= 2
    client = loaded.client("s3")
    listed = [o["Key"] for o in list_new_objects(client, loaded.bucket, RAW_PREFIX, keys[0])]
    assert listed == keys[1:]
    assert [o["Key"] for o in list_new_objects(client, loaded.bucket, RAW_PREFIX, None, limit=1)] == keys[:1]
    assert list_new_objects(client, loaded.bucket, RAW_PREFIX, keys[-1]) == []


def test_run_failure_is_recorded_on_the_run_assets_and_alerted(
    loaded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance, webhook_receiver() as receiver:
        monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
        result = dg.materialize(
            [order_load],
            instance=instance,
            resources=resources_for(loaded),
            run_config={"ops": {"order_load": {"config": {"orders": 1, "rate": -1.0}}}},
            raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_recorder",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            resources={"pipeline": resources_for(loaded)["pipeline"]},
        ).for_run_failure()
        run_failure_recorder(context)
        # One Slack-style message for the one failure: the asset, the run, the reason.
        (message,) = receiver.messages
        assert message["sales_ops"]["kind"] == "run failed"
        assert message["sales_ops"]["asset"] == "order_load"
        assert message["sales_ops"]["run_id"] == result.run_id
        assert "rate must be" in message["text"] and "order_load" in message["text"]

        records = instance.fetch_observations(dg.AssetKey("order_load"), limit=5).records
        assert records, "no observation recorded for the failed run"
        metadata = records[0].asset_observation.metadata
        assert metadata["failed_run_id"].value == result.run_id
        assert "rate must be" in metadata["error"].value


def test_objects_of_a_tenth_stream_version_are_seen_though_their_keys_sort_first(loaded: Settings) -> None:
    """After Firehose's tenth configuration change, `-10-` names sort before `-9-` (issue 21).
    The sensor reads the stack's bucket: a partition later than any other, removed afterwards."""
    s3, hour = loaded.client("s3"), f"{RAW_PREFIX}dt=2099-12-31/hour=23/"
    old, new = "orders-raw-9-2099-12-31-23-05-00-aaaa.gz", "orders-raw-10-2099-12-31-23-06-00-bbbb.gz"
    try:
        s3.put_object(Bucket=loaded.bucket, Key=hour + old, Body=b"{}\n")
        with dg.instance_for_test() as instance:
            cursor = tick(loaded, instance, None).cursor
            s3.put_object(Bucket=loaded.bucket, Key=hour + new, Body=b"{}\n")
            result = tick(loaded, instance, cursor)
            (observation,) = result.asset_events
            assert observation.metadata["new_objects"].value == 1
            assert observation.metadata["newest_object"].value == hour + new
            assert tick(loaded, instance, result.cursor).asset_events == []
    finally:
        for name in (old, new):
            s3.delete_object(Bucket=loaded.bucket, Key=hour + name)
