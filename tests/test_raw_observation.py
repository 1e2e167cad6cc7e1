"""Observing `raw_orders_files` lists raw/ from a cursor (issue 16, defect 15): raw/ is kept for
ever, so a second observation lists the recent partitions only, and its totals still match a full
listing. The real asset and sensor with the aws target's resources, on the emulator's S3 (this
test's own bucket); the listings are counted with a botocore hook on the S3 resource's clients."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import dagster as dg
from sales_ops.definitions import build_definitions
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.ingest.sources import CURSOR_ENTRY, LOOKBACK, raw_orders_files
from sales_ops.settings import RAW_PREFIX, Settings
from tests.aws_emulator import aws_resources_on_emulator, cloudformation_server, hook_s3_resource_clients

pytestmark = pytest.mark.slow


class ListingCounter:
    """Keys returned by every ListObjectsV2 of the S3 resource's clients."""

    def __init__(self) -> None:
        self.keys = 0
        self.calls = 0

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        self.keys += len(parsed.get("Contents", []))


@pytest.fixture()
def resources(space: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The aws target's resources on the emulator, for this test's own bucket."""
    with cloudformation_server() as cloudformation:
        yield aws_resources_on_emulator(space, cloudformation, monkeypatch, tmp_path)


@pytest.fixture()
def listed(monkeypatch: pytest.MonkeyPatch) -> ListingCounter:
    counter = ListingCounter()
    hook_s3_resource_clients(
        monkeypatch, lambda client: client.meta.events.register("after-call.s3.ListObjectsV2", counter)
    )
    return counter


def put_raw(settings: Settings, at: datetime, count: int, tag: str) -> None:
    prefix = f"{RAW_PREFIX}dt={at:%Y-%m-%d}/hour={at:%H}/"
    s3 = settings.client("s3")
    for i in range(count):
        body = b'{"order_id": "o"}\n' * (i + 1)
        s3.put_object(Bucket=settings.bucket, Key=f"{prefix}orders-{tag}-{i:04d}.json", Body=body)


def full_listing(settings: Settings) -> list[dict[str, Any]]:
    pages = settings.client("s3").get_paginator("list_objects_v2")
    return [
        o for p in pages.paginate(Bucket=settings.bucket, Prefix=RAW_PREFIX) for o in p.get("Contents", [])
    ]


def observe(resources: dict[str, Any], instance: dg.DagsterInstance) -> dg.AssetObservation:
    job = build_definitions(resources).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[raw_orders_files.key])
    assert result.success
    (event,) = result.get_asset_observation_events()
    return event.event_specific_data.asset_observation


def assert_totals_match_a_full_listing(observation: dg.AssetObservation, settings: Settings) -> None:
    objects = full_listing(settings)
    metadata = {k: getattr(v, "value", v) for k, v in observation.metadata.items()}
    assert metadata["objects"] == len(objects)
    assert metadata["bytes"] == sum(o["Size"] for o in objects)
    assert metadata["partitions"] == len({o["Key"].rsplit("/", 1)[0] for o in objects})
    assert metadata["newest_object"] == max(objects, key=lambda o: (o["LastModified"], o["Key"]))["Key"]
    # The data version the sensors and the automation rely on: the greatest key.
    assert observation.tags["dagster/data_version"] == max(o["Key"] for o in objects)


def test_a_second_observation_lists_only_the_recent_partitions(
    space: Settings, resources: dict[str, Any], listed: ListingCounter
) -> None:
    now = datetime.now(UTC)
    old = now - LOOKBACK - timedelta(days=3)
    for hours in range(4):  # the history: four old partitions of 60 objects
        put_raw(space, old + timedelta(hours=hours), 60, "old")
    put_raw(space, now - timedelta(hours=1), 5, "a")
    put_raw(space, now, 5, "a")
    with dg.instance_for_test() as instance:
        first = observe(resources, instance)
        assert listed.keys == 250  # no cursor yet: everything, once
        assert_totals_match_a_full_listing(first, space)
        cursor = first.metadata[CURSOR_ENTRY].value
        assert cursor["objects"] == 240 and cursor["horizon"] > f"{RAW_PREFIX}dt={old:%Y-%m-%d}/hour=23"

        # New data: 7 objects in the current hour and one late object in the previous hour.
        put_raw(space, now, 7, "b")
        put_raw(space, now - timedelta(hours=1), 1, "late")
        listed.keys = 0
        second = observe(resources, instance)
        assert listed.keys == 18  # the recent partitions (10 + 8 new), not the 240 behind the horizon
        assert_totals_match_a_full_listing(second, space)

        # A sensor tick in between (its observation is the latest) carries the cursor forward.
        put_raw(space, now, 3, "c")
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            tick = raw_objects_sensor.evaluate_tick(context)
        for event in tick.asset_events:
            instance.report_runless_asset_event(event)
        (from_sensor,) = tick.asset_events
        assert from_sensor.metadata[CURSOR_ENTRY].value == second.metadata[CURSOR_ENTRY].value
        listed.keys = 0
        third = observe(resources, instance)
        assert listed.keys == 21
        assert_totals_match_a_full_listing(third, space)


def test_an_emptied_raw_prefix_is_counted_again_from_the_start(
    space: Settings, resources: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    put_raw(space, now, 3, "a")
    with dg.instance_for_test() as instance:
        assert observe(resources, instance).metadata["objects"].value == 3
        s3 = space.client("s3")
        for obj in full_listing(space):
            s3.delete_object(Bucket=space.bucket, Key=obj["Key"])
        put_raw(space, now - LOOKBACK - timedelta(days=1), 2, "b")  # all before the old horizon
        again = observe(resources, instance)
        assert_totals_match_a_full_listing(again, space)
