"""The raw-objects sensor's first tick on a fresh Dagster home starts at the compaction horizon,
not at the start of raw/, which is kept for ever (issue 24, bug 7)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.resources import resources_for
from sales_ops.settings import RAW_PREFIX, Settings

NOW = datetime.now(UTC)
OLD = f"{RAW_PREFIX}dt=2020-01-01/hour=00/first-tick-old"
RECENT = f"{RAW_PREFIX}dt={NOW:%Y-%m-%d}/hour={NOW:%H}/first-tick-recent"


def test_the_first_tick_lists_from_the_compaction_horizon(local_stack: Settings) -> None:
    s3 = local_stack.client("s3")
    for key in (OLD, RECENT):
        s3.put_object(Bucket=local_stack.bucket, Key=key, Body=b"{}\n")
    try:
        with (
            dg.instance_for_test() as instance,
            dg.build_sensor_context(instance=instance, resources=resources_for(local_stack)) as context,
        ):
            result = raw_objects_sensor.evaluate_tick(context)
        (observation,) = result.asset_events
        partitions = observation.metadata["new_partitions"].value
        assert RECENT.rsplit("/", 1)[0] in partitions
        assert OLD.rsplit("/", 1)[0] not in partitions, "the first tick listed raw/ from its start"
    finally:  # the session's stack is shared
        for key in (OLD, RECENT):
            s3.delete_object(Bucket=local_stack.bucket, Key=key)
