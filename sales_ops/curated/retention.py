"""Retention of orders_latest's files (docs/design.md §2.5): versions superseded more than the
retention ago (never a current one), and the files of deltas dropped (folded) or never registered
(a failed write) as long ago. Until then a running query may still read them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sales_ops.catalog import glue
from sales_ops.curated.tables import (
    DELETED,
    DELTA_PREFIX,
    LATEST_PREFIX,
    VERSION_DIR,
    VERSIONS_TABLE,
    current_versions,
    delete_keys,
    list_sizes,
    live_deltas,
    version_time,
)
from sales_ops.settings import Settings

_DELTA_DIR = re.compile(r"delta=(?P<delta>[^/]+)/")


def remove_superseded(settings: Settings, retention: timedelta) -> int:
    """Remove versions superseded more than `retention` ago (never a current one), and the
    files of deltas dropped (folded) or never registered (a failed write) as long ago."""
    cutoff = datetime.now(UTC) - retention
    current = {d.isoformat(): v for d, v in current_versions(settings).items()}
    keys: dict[tuple[str, str], list[str]] = {}
    for key, _ in list_sizes(settings, LATEST_PREFIX):
        match = VERSION_DIR.search(key)
        if match:
            base = match["version"].removesuffix(DELETED)
            keys.setdefault((match["date"], base), []).append(key)
    by_date: dict[str, list[str]] = {}
    for day, version in keys:
        by_date.setdefault(day, []).append(version)
    doomed: list[tuple[str, str]] = []
    for day, versions in by_date.items():
        versions.sort()
        for i, version in enumerate(versions):
            if version == current.get(day):
                continue
            # Superseded when its successor was written (an orphan of a crash: when written).
            successor = versions[i + 1] if i + 1 < len(versions) else version
            written = version_time(successor)
            if written is not None and written <= cutoff:
                doomed.append((day, version))
    _remove(settings, doomed, keys)
    return len(doomed) + _remove_dead_deltas(settings, cutoff)


def _remove_dead_deltas(settings: Settings, cutoff: datetime) -> int:
    live = set(live_deltas(settings))
    dead: dict[str, list[str]] = {}
    for key, _ in list_sizes(settings, DELTA_PREFIX):
        match = _DELTA_DIR.search(key)
        if match and match["delta"] not in live:
            written = version_time(match["delta"])
            if written is not None and written <= cutoff:
                dead.setdefault(match["delta"], []).append(key)
    delete_keys(settings, [k for ks in dead.values() for k in ks])
    return len(dead)


def _remove(
    settings: Settings, doomed: list[tuple[str, str]], keys: dict[tuple[str, str], list[str]]
) -> None:
    delete_keys(settings, [k for pair in doomed for k in keys[pair]])
    pairs = {(day, v) for day, version in doomed for v in (version, version + DELETED)}
    partitions = glue.list_partitions(settings, VERSIONS_TABLE)  # (order_date, v, bucket)
    glue.delete_partitions(
        settings, VERSIONS_TABLE, [p["Values"] for p in partitions if tuple(p["Values"][:2]) in pairs]
    )
