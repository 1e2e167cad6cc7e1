"""Listing new S3 objects after a key, a page at a time and at most so many per call: what the
raw-objects sensor, the raw files' observation (sources.py) and the errors sensor
(defs/quality/sensors.py) each list with."""

from typing import Any

PAGE_SIZE = 1000
MAX_KEYS_PER_TICK = 10_000  # a backlog is worked through over several ticks


def list_new_objects(
    client: Any, bucket: str, prefix: str, start_after: str | None, limit: int = MAX_KEYS_PER_TICK
) -> list[dict[str, Any]]:
    """Objects under `prefix` whose key sorts after `start_after`, in key order, at most `limit`."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE}
    if start_after:
        kwargs["StartAfter"] = start_after
    objects: list[dict[str, Any]] = []
    while len(objects) < limit:
        page = client.list_objects_v2(**kwargs)
        objects += page.get("Contents", [])
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    return objects[:limit]
