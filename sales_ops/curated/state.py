"""The compaction's state in S3 (the watermark) and the raw objects it lists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sales_ops.settings import CURATED_PREFIX, RAW_PREFIX, Settings, error_code

STATE_KEY = f"{CURATED_PREFIX}_state/compaction.json"
_RAW_KEY = re.compile(r"^dt=(?P<dt>[^/]+)/hour=(?P<hour>[^/]+)/(?P<name>[^/]+)$")
# How far behind the newest raw partition a late object may still land and be found (compaction's
# default lookback, the raw_orders_files observation's horizon): beyond the 24 h of DynamoDB Streams
# plus the 24 h of Kinesis retention that a backlog can hold.
LOOKBACK_HOURS = 72


# A delta's rows per order_date name a row with no date (a Keys-only REMOVE carries none) so.
NO_DATE = "None"


def dated(by_date: Iterable[str]) -> set[date]:
    """The order dates among a delta's per-date keys, without NO_DATE."""
    return {date.fromisoformat(d) for d in by_date if d != NO_DATE}


@dataclass
class CompactionState:
    processed: dict[str, str] = field(default_factory=dict)  # raw key → ETag, from the horizon on
    horizon: str | None = None  # "dt=…/hour=…": partitions before it are not listed any more
    watermark: str | None = None  # greatest raw key compacted
    baselines: list[str] = field(default_factory=list)  # export IDs of orders_baseline merged
    # A run in passes whose swap has not happened yet (it crashed or was stopped): what its finished
    # passes wrote, so the next run goes on from there (compaction.Compaction.plan).
    passes: dict[str, Any] | None = None
    # Live deltas (orders_delta partitions) → their rows per order_date, and the base's live rows
    # per order_date: whether a fold is due (compaction.Compaction.fold_due).
    deltas: dict[str, dict[str, int]] = field(default_factory=dict)
    base_rows: dict[str, int] = field(default_factory=dict)
    # What the last run that wrote anything wrote (the per-cycle checks read it, §2.8): its deltas,
    # the dates they changed or a fold/rebuild rewrote, and the dates a rebuild wrote.
    last_run: dict[str, list[str]] = field(default_factory=dict)
    # Live deltas → their Parquet bytes: every statement of a fold reads them whole.
    delta_bytes: dict[str, int] = field(default_factory=dict)

    def delta_dates(self) -> list[date]:
        """The order dates the live deltas touch."""
        return sorted({d for by_date in self.deltas.values() for d in dated(by_date)})

    def has_dateless_rows(self) -> bool:
        """Whether a live delta holds a row with no order_date (a Keys-only REMOVE)."""
        return any(NO_DATE in by_date for by_date in self.deltas.values())

    @classmethod
    def load(cls, settings: Settings) -> CompactionState:
        try:
            body = settings.client("s3").get_object(Bucket=settings.bucket, Key=STATE_KEY)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return cls()
            raise
        data = json.loads(body)
        return cls(
            data.get("processed", {}),
            data.get("horizon"),
            data.get("watermark"),
            data.get("baselines", []),
            data.get("passes"),
            data.get("deltas", {}),
            data.get("base_rows", {}),
            data.get("last_run", {}),
            data.get("delta_bytes", {}),
        )

    def save(self, settings: Settings) -> None:
        body = {
            "processed": self.processed,
            "horizon": self.horizon,
            "watermark": self.watermark,
            "baselines": self.baselines,
            "passes": self.passes,
            "deltas": self.deltas,
            "base_rows": self.base_rows,
            "last_run": self.last_run,
            "delta_bytes": self.delta_bytes,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        settings.client("s3").put_object(
            Bucket=settings.bucket, Key=STATE_KEY, Body=json.dumps(body).encode()
        )


@dataclass(frozen=True)
class RawObject:
    key: str
    etag: str
    dt: str
    hour: str
    size: int = 0  # bytes: what a query reading it scans (JSON is read whole, compressed or not)
    modified: float = 0.0  # LastModified, epoch seconds

    @property
    def partition(self) -> str:
        return f"dt={self.dt}/hour={self.hour}"


def list_raw(settings: Settings, start_after: str | None = None) -> list[RawObject]:
    """Raw data objects (dt/hour layout, no hidden files), listed from `start_after` on."""
    kwargs: dict[str, Any] = {"Bucket": settings.bucket, "Prefix": RAW_PREFIX}
    if start_after:
        kwargs["StartAfter"] = RAW_PREFIX + start_after
    out = []
    for page in settings.client("s3").get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            match = _RAW_KEY.match(obj["Key"][len(RAW_PREFIX) :])
            if match and obj["Size"] and match["name"][0] not in "_.":
                modified = obj["LastModified"].timestamp()
                dt, hour = match["dt"], match["hour"]
                out.append(RawObject(obj["Key"], obj["ETag"], dt, hour, obj["Size"], modified))
    return out


def horizon(keys: Iterable[str], lookback: timedelta) -> str | None:
    """ "dt=…/hour=…" of the newest raw partition among `keys` (full raw keys) minus `lookback`; a
    future-dated partition counts as now. None when no key is in the dt/hour layout."""
    newest = None
    now = datetime.now(UTC).replace(tzinfo=None)
    for key in keys:
        match = _RAW_KEY.match(key[len(RAW_PREFIX) :])
        if not match:
            continue
        try:
            at = datetime.strptime(f"{match['dt']} {match['hour']}", "%Y-%m-%d %H")
        except ValueError:  # dt=2026-13-45: not a partition Firehose writes
            continue
        newest = at if newest is None or at > newest else newest
    if newest is None:
        return None
    start = min(newest, now) - lookback
    return f"dt={start:%Y-%m-%d}/hour={start:%H}"


def minutes_since_last_run(settings: Settings) -> float | None:
    """Minutes since the compaction state was last written (None before any run)."""
    try:
        head = settings.client("s3").head_object(Bucket=settings.bucket, Key=STATE_KEY)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return (datetime.now(UTC) - head["LastModified"]).total_seconds() / 60
