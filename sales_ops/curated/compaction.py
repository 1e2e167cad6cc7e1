"""Compaction of the raw change events into `orders_latest` (docs/design.md §2.5).

Layout: `curated/orders_latest/order_date=YYYY-MM-DD/v=<version>/*.parquet` holds the live rows of a
date as written by one compaction; `v=<version>-deleted/` beside it holds that version's tombstones
(the latest state of deleted orders), which stop a late or replayed older event from bringing a
deleted order back. The Glue table `orders_latest` has one partition per date pointing at its
current version; `orders_latest_versions` (same location, partitions `order_date`, `v`) is the
table the SQL writes into and reads tombstones from.

One run, under a lock held in S3:
1. list the raw objects not yet compacted (see "watermark" below);
2. ask the engine which order dates their events touch (compact_touched.sql);
3. per batch of ≤ 50 dates (each writes ≤ 2 partitions; Athena writes ≤ 100 per statement):
   INSERT the new version (compact_orders.sql: current rows + tombstones + new events → latest per
   order), then repoint each date's Glue partition at it: one atomic catalog write per partition;
4. record the objects as compacted (the state in S3), then remove versions superseded more than
   `retention_hours` ago.
A crash anywhere before 4 leaves every partition on its old or its new version (both complete) and
the objects not recorded: the next run merges them again, which changes nothing already merged.

Watermark: Firehose puts an event under the dt/hour of its event time, so a late object can land in
an hour already compacted, and partition names alone would miss it. The state is therefore the set
of object keys (with ETags) compacted in the last `lookback_hours` of partitions; a run lists from
that horizon (ListObjectsV2 StartAfter) and takes every object not in the set. Objects arriving
later than the lookback (72 h by default, beyond the 24 h of DynamoDB Streams plus Kinesis
retention in a normal backlog) need `--full`. The report's watermark is the greatest key compacted.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated import baseline
from sales_ops.curated.lock import LEASE_S, LOCK_KEY, CompactionError, S3Lock
from sales_ops.curated.quarantine import Quarantined, quarantine_unreadable
from sales_ops.curated.state import _RAW_KEY, CompactionState, RawObject, list_raw
from sales_ops.query import QueryError, Sql, SqlEngine, literal
from sales_ops.schema import LATEST_COLUMNS
from sales_ops.settings import CURATED_PREFIX, RAW_PREFIX, Settings

ORDERS_LATEST = "orders_latest"
VERSIONS_TABLE = "orders_latest_versions"
LATEST_PREFIX = f"{CURATED_PREFIX}orders_latest/"
DELETED = "-deleted"
DATES_PER_WRITE = 50
PATHS_IN_SQL = 1000  # Athena takes ≤ 256 KB of SQL; beyond this, new objects are chosen by partition
ORPHANS_PER_QUERY = 500
MAX_HOURS = 24 * 365 * 10
MAX_QUARANTINED = 100  # more unreadable objects in one run is not stray data: stop and say so

COLUMNS: list[tuple[str, str]] = [(c.name, c.latest_type) for c in LATEST_COLUMNS]

_VERSION_DIR = re.compile(r"order_date=(?P<date>[^/]+)/v=(?P<version>[^/]+)/")


@dataclass
class CompactionReport:
    rows: int
    partitions_rewritten: list[str]
    bytes_read: int
    bytes_written: int
    watermark_before: str | None
    watermark_after: str | None
    versions_removed: int
    seconds: float
    full: bool = False
    new_objects: int = 0
    version: str | None = None
    quarantined: list[dict[str, str]] = field(default_factory=list)  # raw objects moved aside


def new_version() -> str:
    """Sortable by creation time: 20261123T184556123456Z-1a2b3c."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def version_time(version: str) -> datetime | None:
    try:
        return datetime.strptime(version[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class Plan:
    version: str
    objects: list[RawObject]
    new_events: Sql
    dates: list[date]
    current: dict[date, str]  # date → its current version
    full: bool
    exports: list[str] = field(default_factory=list)  # new orders_baseline partitions (backfills)
    snapshots: str = "FALSE"  # WHERE fragment picking their rows (an Sql)

    def batches(self, size: int = DATES_PER_WRITE) -> list[list[date]]:
        return [self.dates[i : i + size] for i in range(0, len(self.dates), size)]


class Compaction:
    """The steps of one run, separately callable (tests stop between them to play a crash)."""

    def __init__(
        self,
        settings: Settings,
        engine: SqlEngine,
        full: bool = False,
        retention_hours: float = 24,
        lookback_hours: float = 72,
        lock: S3Lock | None = None,
        dates_per_write: int = DATES_PER_WRITE,
    ) -> None:
        if not (0 <= retention_hours <= MAX_HOURS and 0 < lookback_hours <= MAX_HOURS):
            # NaN fails both comparisons; a negative lookback would move the horizon into the future
            raise ValueError(
                f"retention_hours must be in [0, {MAX_HOURS}] and lookback_hours in (0, {MAX_HOURS}], "
                f"not {retention_hours} and {lookback_hours}"
            )
        self.settings = settings
        self.engine = engine
        self.full = full
        self.retention = timedelta(hours=retention_hours)
        self.lookback = timedelta(hours=lookback_hours)
        self.lock = lock
        self.dates_per_write = dates_per_write
        self.bytes_read = 0
        self.state = CompactionState()
        self.quarantined: list[Quarantined] = []

    def run(self) -> CompactionReport:
        started = time.monotonic()
        plan = self.plan()
        before = self.state.watermark
        if plan is None:
            removed = self.cleanup()
            return CompactionReport(
                0,
                [],
                self.bytes_read,
                0,
                before,
                before,
                removed,
                time.monotonic() - started,
                quarantined=[asdict(q) for q in self.quarantined],
            )
        for batch in plan.batches(self.dates_per_write):
            self.write(plan, batch)
            self.swap(plan, batch)
        rows, written = self.finish(plan)
        removed = self.cleanup()
        return CompactionReport(
            rows=rows,
            partitions_rewritten=[f"order_date={d.isoformat()}" for d in plan.dates],
            bytes_read=self.bytes_read,
            bytes_written=written,
            watermark_before=before,
            watermark_after=self.state.watermark,
            versions_removed=removed,
            seconds=time.monotonic() - started,
            full=self.full,
            new_objects=len(plan.objects),
            version=plan.version,
            quarantined=[asdict(q) for q in self.quarantined],
        )

    # 1. what is new, and which dates it touches -------------------------------------------
    def plan(self) -> Plan | None:
        ensure_tables(self.settings)
        self.state = CompactionState.load(self.settings)
        objects = self._new_objects()
        exports = [e for e in baseline.exports(self.settings) if self.full or e not in self.state.baselines]
        if not objects and not exports and not self.full:
            return None
        self._register_raw_partitions(objects)
        first_run = not self.state.processed and self.state.horizon is None
        snapshots = Sql("TRUE") if self.full else Sql(f"export_id IN ({literal(exports, top=True)})")
        for _ in range(MAX_QUARANTINED + 1):
            selector = Sql("TRUE") if self.full or first_run else _selector(objects, self.settings.bucket)
            if not objects and not (self.full or first_run):
                selector = Sql("FALSE")
            try:
                dates = self._touched_dates(selector, snapshots)
                break
            except QueryError as exc:  # a malformed raw object: move it aside and go on
                moved = quarantine_unreadable(self.settings, exc, [o.key for o in objects])
                if not moved or len(self.quarantined) >= MAX_QUARANTINED:
                    raise
                self.quarantined += moved
                gone = {q.source for q in moved}
                objects = [o for o in objects if o.key not in gone]
        if not objects and not exports and not self.full:
            return None
        current = current_versions(self.settings)
        return Plan(new_version(), objects, selector, sorted(dates), current, self.full, exports, snapshots)

    def _new_objects(self) -> list[RawObject]:
        if self.full:
            return list_raw(self.settings)
        start = self.state.horizon
        if self.state.watermark:  # a longer lookback than last time reaches further back
            wanted = _horizon({self.state.watermark: ""}, self.lookback)
            start = min(start, wanted) if start and wanted else start or wanted
        listed = list_raw(self.settings, start)
        # Before the stored horizon nothing is remembered: those objects count as new, and merging
        # them again is harmless (idempotent), only slower.
        return [o for o in listed if self.state.processed.get(o.key) != o.etag]

    def _register_raw_partitions(self, objects: list[RawObject]) -> None:
        """Athena sees only catalogued partitions: add any the crawler has not added yet."""
        table = glue.require_table(self.settings, glue.RAW_TABLE)
        known = {tuple(p["Values"]) for p in glue.list_partitions(self.settings, glue.RAW_TABLE)}
        missing = sorted({(o.dt, o.hour) for o in objects} - known)
        entries = [
            glue.partition_input(table, [dt, hour], self.settings.s3_uri(f"{RAW_PREFIX}dt={dt}/hour={hour}/"))
            for dt, hour in missing
        ]
        glue.put_partitions(self.settings, table, entries)

    def _touched_dates(self, selector: Sql, snapshots: Sql) -> set[date]:
        result = self.engine.named("compact_touched", new_events=selector, new_snapshots=snapshots)
        self.bytes_read += result.bytes_scanned
        dates = {_as_date(d) for d, _ in result.rows if d is not None}
        orphans = sorted({o for _, o in result.rows if o is not None})
        if orphans and not self.full:
            for i in range(0, len(orphans), ORPHANS_PER_QUERY):
                found = self.engine.named("compact_orphans", order_ids=orphans[i : i + ORPHANS_PER_QUERY])
                self.bytes_read += found.bytes_scanned
                dates |= {_as_date(d) for (d,) in found.rows if d is not None}
        return dates

    # 2. write a batch of dates as a new version, then swap their partitions -----------------
    def write(self, plan: Plan, batch: list[date]) -> None:
        incremental = not plan.full
        result = self.engine.named(
            "compact_orders",
            new_events=plan.new_events,
            new_snapshots=Sql(plan.snapshots),
            dates=batch,
            current_dates=batch if incremental else [],
            tombstone_versions=[
                plan.current[d] + DELETED for d in batch if d in plan.current and incremental
            ],
            version=plan.version,
            deleted_version=plan.version + DELETED,
        )
        self.bytes_read += result.bytes_scanned

    def swap(self, plan: Plan, batch: list[date]) -> None:
        if self.lock:
            self.lock.check()
        table = glue.require_table(self.settings, ORDERS_LATEST)
        entries = [
            glue.partition_input(
                table,
                [d.isoformat()],
                self.settings.s3_uri(f"{LATEST_PREFIX}order_date={d.isoformat()}/v={plan.version}/"),
                {"compaction_version": plan.version},
            )
            for d in batch
        ]
        glue.put_partitions(self.settings, table, entries)

    # 3. record what was compacted ------------------------------------------------------------
    def finish(self, plan: Plan) -> tuple[int, int]:
        if self.lock:
            self.lock.check()
        if plan.full:  # dates with no event left at all lose their partition
            gone = [[d.isoformat()] for d in plan.current if d not in set(plan.dates)]
            glue.delete_partitions(self.settings, ORDERS_LATEST, gone)
        rows = self.engine.named("compact_rows", version=plan.version)
        self.bytes_read += rows.bytes_scanned
        written = sum(
            size for key, size in _list_sizes(self.settings, LATEST_PREFIX) if f"/v={plan.version}" in key
        )
        state = self.state
        for obj in plan.objects:
            state.processed[obj.key] = obj.etag
        if state.processed:
            state.watermark = max(state.processed)
        state.baselines = sorted(set(state.baselines) | set(plan.exports))
        state.horizon = _horizon(state.processed, self.lookback) or state.horizon
        if state.horizon:  # what lies before the horizon is no longer listed, so no longer kept
            state.processed = {
                k: e for k, e in state.processed.items() if k[len(RAW_PREFIX) :] > state.horizon
            }
        state.save(self.settings)
        return int(rows.rows[0][0]) if rows.rows else 0, written

    # 4. retention ------------------------------------------------------------------------------
    def cleanup(self) -> int:
        """Remove versions superseded more than `retention` ago (never a current one)."""
        cutoff = datetime.now(UTC) - self.retention
        current = {d.isoformat(): v for d, v in current_versions(self.settings).items()}
        keys: dict[tuple[str, str], list[str]] = {}
        for key, _ in _list_sizes(self.settings, LATEST_PREFIX):
            match = _VERSION_DIR.search(key)
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
        self._remove(doomed, keys)
        return len(doomed)

    def _remove(self, doomed: list[tuple[str, str]], keys: dict[tuple[str, str], list[str]]) -> None:
        s3 = self.settings.client("s3")
        objects = [{"Key": k} for pair in doomed for k in keys[pair]]
        for i in range(0, len(objects), 1000):
            s3.delete_objects(
                Bucket=self.settings.bucket, Delete={"Objects": objects[i : i + 1000], "Quiet": True}
            )
        values = [[day, v] for day, version in doomed for v in (version, version + DELETED)]
        known = {tuple(p["Values"]) for p in glue.list_partitions(self.settings, VERSIONS_TABLE)}
        glue.delete_partitions(self.settings, VERSIONS_TABLE, [v for v in values if tuple(v) in known])


def compact(
    settings: Settings,
    engine: SqlEngine,
    full: bool = False,
    retention_hours: float = 24,
    lookback_hours: float = 72,
    lease_s: float = LEASE_S,
    dates_per_write: int = DATES_PER_WRITE,
) -> CompactionReport:
    """Run one compaction under the S3 lock (CompactionLocked if another one is running)."""
    with S3Lock(settings, LOCK_KEY, lease_s).held() as lock:
        job = Compaction(settings, engine, full, retention_hours, lookback_hours, lock, dates_per_write)
        report = job.run()
    from sales_ops.curated.live import put_live_view  # it builds on this module

    put_live_view(settings, job.state)  # orders_live's raw tail starts at the new watermark
    return report


def ensure_tables(settings: Settings) -> None:
    """orders_latest, orders_latest_versions and orders_baseline exist in Glue; raw_orders must (the
    crawler's, or the backfill's for a table whose rows never streamed)."""
    if glue.get_table(settings, glue.RAW_TABLE) is None:
        raise CompactionError(
            f"{settings.database}.{glue.RAW_TABLE} is not in the catalog yet: run `sales-ops crawl` first"
        )
    if glue.get_table(settings, baseline.BASELINE_TABLE) is None:
        baseline.ensure_tables(settings)
    location = settings.s3_uri(LATEST_PREFIX)
    if glue.get_table(settings, ORDERS_LATEST) is None:
        glue.put_table(
            settings, glue.parquet_table_input(ORDERS_LATEST, COLUMNS, location, [("order_date", "date")])
        )
    if glue.get_table(settings, VERSIONS_TABLE) is None:
        keys = [("order_date", "date"), ("v", "string")]
        glue.put_table(settings, glue.parquet_table_input(VERSIONS_TABLE, COLUMNS, location, keys))


def current_versions(settings: Settings) -> dict[date, str]:
    """Each order_date partition of orders_latest → the version it points at ({} before any)."""
    if glue.get_table(settings, ORDERS_LATEST) is None:
        return {}
    out = {}
    for partition in glue.list_partitions(settings, ORDERS_LATEST):
        match = _VERSION_DIR.search(partition["StorageDescriptor"]["Location"])
        if match:
            out[date.fromisoformat(partition["Values"][0])] = match["version"]
    return out


def _selector(objects: list[RawObject], bucket: str) -> Sql:
    """WHERE fragment picking the new objects' events: their partitions, and their files."""
    parts = sorted({(o.dt, o.hour) for o in objects})
    where = " OR ".join(f"(dt = {literal(dt)} AND hour = {literal(hour)})" for dt, hour in parts)
    if len(objects) > PATHS_IN_SQL:
        # Re-reading older events of these partitions is harmless (the merge is idempotent).
        return Sql(f"({where})")
    paths = ", ".join(literal(f"s3://{bucket}/{o.key}") for o in objects)
    return Sql(f'({where}) AND "$path" IN ({paths})')


def _horizon(processed: dict[str, str], lookback: timedelta) -> str | None:
    """Newest compacted partition minus the lookback (a future-dated partition counts as now)."""
    newest = None
    now = datetime.now(UTC).replace(tzinfo=None)
    for key in processed:
        match = _RAW_KEY.match(key[len(RAW_PREFIX) :])
        if not match:
            continue
        try:
            at = datetime.strptime(f"{match['dt']} {match['hour']}", "%Y-%m-%d %H")
        except ValueError:
            continue
        newest = at if newest is None or at > newest else newest
    if newest is None:
        return None
    start = min(newest, now) - lookback
    return f"dt={start:%Y-%m-%d}/hour={start:%H}"


def _list_sizes(settings: Settings, prefix: str) -> list[tuple[str, int]]:
    out = []
    for page in (
        settings.client("s3").get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
    ):
        out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return out


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
