"""The S3 sensors without an emulator: a real boto3 S3 client answered by botocore's Stubber
(which also checks every request's parameters), evaluated by real Dagster on a test instance.
(The same sensors against the emulator: tests/test_dagster_sensors.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import dagster as dg
from sales_ops.defs.ingest.listing import PAGE_SIZE, list_new_objects
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.quality.sensors import processing_failed_sensor
from sales_ops.defs.resources import PipelineResource
from sales_ops.raw_objects import delivery_position
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX

BUCKET = "sales-ops-local"
HOUR = f"{RAW_PREFIX}dt=2026-03-01/hour=10/"
KEYS = [f"{HOUR}orders-raw-1-2026-03-01-10-0{i}-00-{i:04d}" for i in range(5)]
# A cursor positioned before HOUR's objects (a first tick starts at the compaction horizon, from
# now: tests/test_dagster_first_tick.py).
BEFORE_HOUR = f"@{HOUR}//"


@pytest.fixture()
def s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()  # every page the test expected was asked for


def page(keys: list[str], token: str | None = None) -> dict[str, Any]:
    """A ListObjectsV2 answer; `token` makes it a truncated page with more to come."""
    contents = [
        {"Key": k, "Size": 100, "ETag": '"e"', "LastModified": datetime(2026, 3, 1, tzinfo=UTC)} for k in keys
    ]
    answer: dict[str, Any] = {"Contents": contents, "KeyCount": len(keys), "IsTruncated": token is not None}
    if token:
        answer["NextContinuationToken"] = token
    return answer


def listing(prefix: str = RAW_PREFIX, **extra: Any) -> dict[str, Any]:
    return {"Bucket": BUCKET, "Prefix": prefix, "MaxKeys": PAGE_SIZE, **extra}


def test_listing_starts_after_the_cursor_and_follows_pages(s3: tuple[Any, Stubber]) -> None:
    client, stubber = s3
    stubber.add_response("list_objects_v2", page(KEYS[1:3], token="t1"), listing(StartAfter=KEYS[0]))
    stubber.add_response(
        "list_objects_v2", page(KEYS[3:]), listing(StartAfter=KEYS[0], ContinuationToken="t1")
    )
    assert [o["Key"] for o in list_new_objects(client, BUCKET, RAW_PREFIX, KEYS[0])] == KEYS[1:]


def test_listing_without_a_cursor_starts_at_the_prefix_and_stops_at_the_limit(
    s3: tuple[Any, Stubber],
) -> None:
    client, stubber = s3
    stubber.add_response("list_objects_v2", page(KEYS[:3], token="t1"), listing())  # no StartAfter
    # The limit is reached on the first page: the second is never asked for.
    assert [o["Key"] for o in list_new_objects(client, BUCKET, RAW_PREFIX, None, limit=2)] == KEYS[:2]


class StubbedS3:
    """Stands in for dagster-aws's S3Resource (whose get_client builds a new client each call)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_client(self) -> Any:
        return self.client


@pytest.fixture()
def resources(s3: tuple[Any, Stubber], tmp_path: Path) -> dict[str, Any]:
    pipeline = PipelineResource(target="local", endpoint_url="http://127.0.0.1:9", state_dir=str(tmp_path))
    return {"pipeline": pipeline, "s3": StubbedS3(s3[0])}


def tick(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources: dict[str, Any], cursor: str | None
) -> Any:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def test_new_raw_objects_are_reported_as_one_observation_and_launch_no_run(
    s3: tuple[Any, Stubber], resources: dict[str, Any]
) -> None:
    _, stubber = s3
    # The cursor's whole partition is listed (keys do not sort by time), what follows it is kept.
    stubber.add_response("list_objects_v2", page(KEYS), listing(StartAfter=HOUR))
    with dg.instance_for_test() as instance:
        result = tick(raw_objects_sensor, instance, resources, delivery_position(KEYS[1]))
    assert result.run_requests == []  # declarative automation decides what runs
    assert result.cursor == delivery_position(KEYS[-1])
    (observation,) = result.asset_events
    assert observation.asset_key == dg.AssetKey("raw_orders_files")
    assert observation.metadata["new_objects"].value == 3
    assert observation.metadata["newest_object"].value == KEYS[-1]


def test_a_new_stream_version_is_seen_though_its_key_sorts_before_the_cursor(
    s3: tuple[Any, Stubber], resources: dict[str, Any]
) -> None:
    """Firehose's tenth configuration change: `-10-` names sort before `-9-` ones (issue 21)."""
    _, stubber = s3
    old = f"{HOUR}orders-raw-9-2026-03-01-10-05-00-aaaa.gz"
    new = [f"{HOUR}orders-raw-10-2026-03-01-10-0{i}-00-bbb{i}.gz" for i in (6, 7)]
    first, second = page([old]), page([*new, old])
    stubber.add_response("list_objects_v2", first, listing(StartAfter=HOUR))
    stubber.add_response("list_objects_v2", second, listing(StartAfter=HOUR))
    with dg.instance_for_test() as instance:
        cursor = tick(raw_objects_sensor, instance, resources, BEFORE_HOUR).cursor
        assert cursor == delivery_position(old)
        result = tick(raw_objects_sensor, instance, resources, cursor)
    assert result.asset_events[0].metadata["new_objects"].value == 2
    assert result.asset_events[0].metadata["newest_object"].value == new[-1]
    assert result.cursor == delivery_position(new[-1]) > cursor


def test_nothing_new_skips_and_keeps_the_cursor(s3: tuple[Any, Stubber], resources: dict[str, Any]) -> None:
    _, stubber = s3
    stubber.add_response("list_objects_v2", page(KEYS), listing(StartAfter=HOUR))
    cursor = delivery_position(KEYS[-1])
    with dg.instance_for_test() as instance:
        result = tick(raw_objects_sensor, instance, resources, cursor)
    assert result.run_requests == []
    assert result.skip_message == f"no new raw objects after {cursor}"
    assert result.cursor in (None, cursor)  # unchanged


def test_new_objects_are_reported_even_while_a_run_is_in_progress(
    s3: tuple[Any, Stubber], resources: dict[str, Any]
) -> None:
    _, stubber = s3
    stubber.add_response("list_objects_v2", page(KEYS), listing(StartAfter=HOUR))
    with dg.instance_for_test() as instance:
        instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
        result = tick(raw_objects_sensor, instance, resources, BEFORE_HOUR)
    # No bookkeeping of runs in progress: the observation is recorded, automation coalesces.
    assert result.cursor == delivery_position(KEYS[-1])
    assert result.asset_events[0].metadata["new_objects"].value == len(KEYS)


def test_processing_failed_objects_trigger_the_failing_check_job(
    s3: tuple[Any, Stubber], resources: dict[str, Any]
) -> None:
    _, stubber = s3
    errors = [f"{ERROR_PREFIX}processing-failed/2026/03/01/10/orders-raw-1-{i}" for i in range(2)]
    stubber.add_response("list_objects_v2", page(errors), listing(ERROR_PREFIX))
    with dg.instance_for_test() as instance:
        # A run in progress does not hold the failing check back: it is another job.
        instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
        result = tick(processing_failed_sensor, instance, resources, None)
    (request,) = result.run_requests
    assert request.job_name == "processing_failed_job"
    assert request.run_key == result.cursor == errors[-1]
    assert request.tags["sales_ops/trigger"] == "processing_failed_objects"
