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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated import baseline
from sales_ops.curated.lock import LEASE_S, LOCK_KEY, CompactionError, S3Lock
from sales_ops.curated.quarantine import Quarantined, quarantine_unreadable
from sales_ops.curated.state import LOOKBACK_HOURS, CompactionState, RawObject, horizon, list_raw
from sales_ops.query import QueryError, Sql, SqlEngine, literal
from sales_ops.schema import LATEST_COLUMNS
from sales_ops.settings import CURATED_PREFIX, RAW_PREFIX, Settings

ORDERS_LATEST = "orders_latest"
VERSIONS_TABLE = "orders_latest_versions"
LATEST_PREFIX = f"{CURATED_PREFIX}orders_latest/"
DELETED = "-deleted"
DATES_PER_WRITE = 50
# Athena takes at most 262,144 bytes of SQL ("Service Quotas", Athena user guide): a selector lists
# at most this many object paths (~110 bytes each), beyond that whole partitions (~40 bytes each).
PATHS_IN_SQL = 1000
PARTITIONS_IN_SQL = 1000
ORPHANS_PER_QUERY = 500
MAX_HOURS = 24 * 365 * 10
# An object this much older than a listing's time was surely in it: S3's LastModified is when the
# upload began (a multipart one: when it was created), and clocks differ. Younger ones, which the
# listing may have missed, are merged again on resuming (harmless: the merge is idempotent).
LISTING_MARGIN_S = 300
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
    passes: int = 0  # windows of raw objects, each scanned by its own statements


def new_version() -> str:
    """Sortable by creation time: 20261123T184556123456Z-1a2b3c."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def version_time(version: str) -> datetime | None:
    try:
        return datetime.strptime(version[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class Window:
    """Raw objects merged by one pass: a statement scanning them stays under the per-query cutoff."""

    objects: list[RawObject]
    selector: Sql  # WHERE fragment on raw_orders picking exactly these objects' events
    version: str  # the orders_latest version this pass writes


@dataclass
class Plan:
    version: str
    objects: list[RawObject]
    windows: list[Window]
    current: dict[date, str]  # date → its current version (Glue's partition, before this run)
    full: bool
    exports: list[str] = field(default_factory=list)  # new orders_baseline partitions (backfills)
    snapshots: str = "FALSE"  # WHERE fragment picking their rows (an Sql)
    # date → the version its rows are merged into: current at first (none in a full rebuild), then
    # the version each pass writes. Swapped into Glue once every pass is written.
    latest: dict[date, str] = field(default_factory=dict)
    dates: list[date] = field(default_factory=list)  # every date this run rewrote
    # Checkpoints of a run in passes: the objects (key → ETag) and exports merged by finished passes
    # (an interrupted run's, resumed here, and this run's), and how many passes came before this run.
    merged: dict[str, str] = field(default_factory=dict)
    merged_exports: list[str] = field(default_factory=list)
    passes_done: int = 0

    def rewritten(self) -> dict[date, str]:
        """Each date rewritten so far → the version it was written to (this run's, resumed ones too)."""
        return {d: self.latest[d] for d in self.dates if d in self.latest}

    def written_versions(self) -> list[str]:
        return sorted(set(self.rewritten().values()))

    def snapshots_for(self, window: Window) -> Sql:
        """The new baseline rows are merged by the run's first pass only."""
        return Sql(self.snapshots) if window is self.windows[0] else Sql("FALSE")


class Compaction:
    """The steps of one run, separately callable (tests stop between them to play a crash)."""

    def __init__(
        self,
        settings: Settings,
        engine: SqlEngine,
        full: bool = False,
        retention_hours: float = 24,
        lookback_hours: float = LOOKBACK_HOURS,
        lock: S3Lock | None = None,
        dates_per_write: int = DATES_PER_WRITE,
        window_bytes: int | None = None,
        progress: Callable[[str], None] | None = None,
        listing_margin_s: float = LISTING_MARGIN_S,
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
        # Half the cutoff for raw JSON (read whole); the rest is for the Parquet a pass also reads.
        self.window_bytes = window_bytes or settings.scan_cutoff_bytes // 2
        self.bytes_read = 0
        self.state = CompactionState()
        self.quarantined: list[Quarantined] = []
        self.partition_bytes: dict[str, int] = {}  # "dt=…/hour=…" → bytes listed there
        self.progress = progress or (lambda message: None)
        self.listed_at = 0.0  # when plan() listed raw/ (checkpoints of passes record it)
        self.listing_margin_s = listing_margin_s

    def run(self) -> CompactionReport:
        started = time.monotonic()
        plan = self.plan()
        before = self.state.watermark
        if plan is not None:
            self.write_all(plan)
            if not (plan.objects or plan.exports or plan.full or plan.merged):
                plan = None  # every new object was quarantined: nothing to record
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
        for i in range(0, len(plan.dates), self.dates_per_write):
            self.swap(plan, plan.dates[i : i + self.dates_per_write])
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
            new_objects=len({o.key for o in plan.objects} | set(plan.merged)),
            version=plan.version,
            quarantined=[asdict(q) for q in self.quarantined],
            passes=plan.passes_done + len(plan.windows),
        )

    # 1. what is new, in passes that each stay under the scan cutoff ---------------------------
    def plan(self) -> Plan | None:
        ensure_tables(self.settings)
        self.state = CompactionState.load(self.settings)
        pending = self.state.passes or {}
        if pending:  # an interrupted run in passes: go on where it stopped (a rebuild stays one)
            self.full = self.full or bool(pending["full"])
            self.progress(f"resuming the run of version {pending['version']} after pass {pending['done']}")
        self.listed_at = time.time()
        merged: dict[str, str] = {}
        objects = []
        for obj in self._new_objects():
            if pending and _merged_before(obj, pending, self.listing_margin_s):
                merged[obj.key] = obj.etag
            else:
                objects.append(obj)
        done_exports = list(pending.get("exports", []))
        exports = [
            e
            for e in baseline.exports(self.settings)
            if (self.full or e not in self.state.baselines) and e not in done_exports
        ]
        if not objects and not exports and not self.full and not pending:
            return None
        self._register_raw_partitions(objects)
        snapshots = Sql("TRUE") if self.full else Sql(f"export_id IN ({literal(exports, top=True)})")
        version = pending.get("version") or new_version()
        done = int(pending.get("done", 0))
        groups = passes(objects, self.partition_bytes, self.window_bytes) or [[]]
        # The first pass keeps the run's own version name; later ones sort after it.
        names = [version if i == 0 else f"{version}-w{i:04d}" for i in range(done, done + len(groups))]
        windows = [
            Window(group, _selector(group, self.settings.bucket), name)
            for group, name in zip(groups, names, strict=True)
        ]
        current = current_versions(self.settings)
        latest = {} if self.full else dict(current)
        latest |= {date.fromisoformat(d): v for d, v in pending.get("latest", {}).items()}
        dates = sorted(date.fromisoformat(d) for d in pending.get("dates", []))
        return Plan(
            version, objects, windows, current, self.full, exports, snapshots, latest, dates,
            merged, done_exports, done,
        )  # fmt: skip

    def write_all(self, plan: Plan) -> None:
        """Every pass in turn: its touched dates, then each batch of them as the pass's version."""
        for number, window in enumerate(plan.windows, 1):
            if self.lock:
                self.lock.check()
            if len(plan.windows) > 1:
                self.progress(
                    f"pass {number}/{len(plan.windows)}: {len(window.objects)} raw object(s), "
                    f"{self._raw_bytes(window):,} bytes"
                )
            dates = sorted(self.touched(plan, window))
            for batch in self._batches(plan, window, dates):
                self.write(plan, window, batch)
            if len(plan.windows) > 1 or plan.passes_done:
                self._checkpoint(plan, window, number)
        plan.objects = [o for w in plan.windows for o in w.objects]  # less what was quarantined

    def _checkpoint(self, plan: Plan, window: Window, number: int) -> None:
        """Record a finished pass in the state, so that a crash costs only the pass under way."""
        if self.lock:
            self.lock.check()
        plan.merged |= {o.key: o.etag for o in window.objects}
        if number == 1:  # the first pass merged the new snapshots
            plan.merged_exports = sorted(set(plan.merged_exports) | set(plan.exports))
        # Passes take the objects in key order, so what this run merged is every object it listed up
        # to the greatest key of its finished passes: that key and the listing's time say it (the
        # state stays small however many objects a rebuild reads).
        # (A resumed run's own listing and key: what it skipped lies below them too.)
        self.state.passes = {
            "version": plan.version,
            "full": plan.full,
            "done": plan.passes_done + number,
            "through": max((o.key for w in plan.windows[:number] for o in w.objects), default=""),
            "listed_at": self.listed_at,
            "exports": plan.merged_exports,
            "latest": {d.isoformat(): v for d, v in plan.rewritten().items()},
            "dates": [d.isoformat() for d in plan.dates],
        }
        self.state.save(self.settings)

    def _batches(self, plan: Plan, window: Window, dates: list[date]) -> list[list[date]]:
        """Dates in batches of at most `dates_per_write` whose statement stays under the cutoff: the
        pass's raw objects plus the Parquet rows each date is merged with."""
        room = self.settings.scan_cutoff_bytes - self._raw_bytes(window)
        merged = _version_bytes(self.settings) if plan.latest else {}
        out: list[list[date]] = []
        batch: list[date] = []
        batch_bytes = 0
        for d in dates:
            version = plan.latest.get(d)
            size = merged.get((d.isoformat(), version), 0) if version else 0
            if batch and (len(batch) >= self.dates_per_write or batch_bytes + size > room):
                out.append(batch)
                batch, batch_bytes = [], 0
            batch.append(d)
            batch_bytes += size
        return [*out, batch] if batch else out

    def _raw_bytes(self, window: Window) -> int:
        """What the pass's selector reads of raw/: its objects, or all of its partitions (_selector)."""
        if len(window.objects) <= PATHS_IN_SQL:
            return sum(o.size for o in window.objects)
        return sum(self.partition_bytes.get(p, 0) for p in {o.partition for o in window.objects})

    def _new_objects(self) -> list[RawObject]:
        if self.full:
            listed = list_raw(self.settings)
        else:
            start = self.state.horizon
            if self.state.watermark:  # a longer lookback than last time reaches further back
                wanted = horizon({self.state.watermark: ""}, self.lookback)
                start = min(start, wanted) if start and wanted else start or wanted
            listed = list_raw(self.settings, start)
        for o in listed:
            self.partition_bytes[o.partition] = self.partition_bytes.get(o.partition, 0) + o.size
        # Before the stored horizon nothing is remembered: those objects count as new, and merging
        # them again is harmless (idempotent), only slower.
        return [o for o in listed if self.full or self.state.processed.get(o.key) != o.etag]

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

    def touched(self, plan: Plan, window: Window) -> set[date]:
        """The order dates a pass's events (and, in the first pass, new snapshots) touch.

        A raw object the engine cannot read is moved aside (quarantine) and the pass goes on
        without it.
        """
        snapshots = plan.snapshots_for(window)
        for _ in range(MAX_QUARANTINED + 1):
            try:
                dates = self._touched_dates(plan, window.selector, snapshots)
                break
            except QueryError as exc:
                moved = quarantine_unreadable(self.settings, exc, [o.key for o in window.objects])
                if not moved or len(self.quarantined) >= MAX_QUARANTINED:
                    raise
                self.quarantined += moved
                gone = {q.source for q in moved}
                window.objects = [o for o in window.objects if o.key not in gone]
                window.selector = _selector(window.objects, self.settings.bucket)
        plan.dates = sorted(set(plan.dates) | dates)
        return dates

    def _touched_dates(self, plan: Plan, selector: Sql, snapshots: Sql) -> set[date]:
        result = self.engine.named("compact_touched", new_events=selector, new_snapshots=snapshots)
        self.bytes_read += result.bytes_scanned
        dates = {_as_date(d) for d, _ in result.rows if d is not None}
        orphans = sorted({o for _, o in result.rows if o is not None})
        for i in range(0, len(orphans), ORPHANS_PER_QUERY):
            found = self.engine.named(
                "compact_orphans",
                order_ids=orphans[i : i + ORPHANS_PER_QUERY],
                with_current=Sql("FALSE" if plan.full else "TRUE"),
                run_versions=plan.written_versions(),
            )
            self.bytes_read += found.bytes_scanned
            dates |= {_as_date(d) for (d,) in found.rows if d is not None}
        return dates

    # 2. write a batch of dates as the pass's version ------------------------------------------
    def write(self, plan: Plan, window: Window, batch: list[date]) -> None:
        merged_into = [(d, plan.latest[d]) for d in batch if d in plan.latest]
        result = self.engine.named(
            "compact_orders",
            new_events=window.selector,
            new_snapshots=plan.snapshots_for(window),
            dates=batch,
            current_rows=_version_pairs(merged_into, ""),
            tombstones=_version_pairs(merged_into, DELETED),
            version=window.version,
            deleted_version=window.version + DELETED,
        )
        self.bytes_read += result.bytes_scanned
        for d in batch:
            plan.latest[d] = window.version

    def swap(self, plan: Plan, dates: list[date]) -> None:
        """Point each date's orders_latest partition at the last version written for it."""
        if self.lock:
            self.lock.check()
        table = glue.require_table(self.settings, ORDERS_LATEST)
        entries = [
            glue.partition_input(
                table,
                [d.isoformat()],
                self.settings.s3_uri(f"{LATEST_PREFIX}order_date={d.isoformat()}/v={plan.latest[d]}/"),
                {"compaction_version": plan.latest[d]},
            )
            for d in dates
        ]
        glue.put_partitions(self.settings, table, entries)

    # 3. record what was compacted ------------------------------------------------------------
    def finish(self, plan: Plan) -> tuple[int, int]:
        if self.lock:
            self.lock.check()
        rewritten = plan.rewritten()
        if plan.full:  # dates with no event left at all lose their partition
            gone = [[d.isoformat()] for d in plan.current if d not in rewritten]
            glue.delete_partitions(self.settings, ORDERS_LATEST, gone)
        counts = self.engine.named("compact_rows", versions=sorted(set(rewritten.values())))
        self.bytes_read += counts.bytes_scanned
        rows = sum(int(n) for d, v, n in counts.rows if rewritten.get(_as_date(d)) == v)
        written = sum(
            size for key, size in _list_sizes(self.settings, LATEST_PREFIX) if f"/v={plan.version}" in key
        )
        state = self.state
        for obj in plan.objects:
            state.processed[obj.key] = obj.etag
        state.processed |= plan.merged  # by the passes of an interrupted run, resumed here
        state.passes = None
        if state.processed:
            state.watermark = max(state.processed)
        state.baselines = sorted(set(state.baselines) | set(plan.exports) | set(plan.merged_exports))
        state.horizon = horizon(state.processed, self.lookback) or state.horizon
        if state.horizon:  # what lies before the horizon is no longer listed, so no longer kept
            state.processed = {
                k: e for k, e in state.processed.items() if k[len(RAW_PREFIX) :] > state.horizon
            }
        state.save(self.settings)
        return rows, written

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
    lookback_hours: float = LOOKBACK_HOURS,
    lease_s: float = LEASE_S,
    dates_per_write: int = DATES_PER_WRITE,
    window_bytes: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompactionReport:
    """Run one compaction under the S3 lock (CompactionLocked if another one is running)."""
    with S3Lock(settings, LOCK_KEY, lease_s).held() as lock:
        job = Compaction(
            settings,
            engine,
            full,
            retention_hours,
            lookback_hours,
            lock,
            dates_per_write,
            window_bytes,
            progress,
        )
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


def passes(
    objects: list[RawObject],
    partition_bytes: dict[str, int],
    budget: int,
    max_paths: int = PATHS_IN_SQL,
    max_partitions: int = PARTITIONS_IN_SQL,
) -> list[list[RawObject]]:
    """The objects, in key order (dt, hour), cut into passes that each scan at most `budget` bytes.

    A full rebuild, a first run or a long backlog would otherwise read all of raw/ in one statement,
    and Athena cancels any statement that scans more than the workgroup's cutoff. A pass holds
    whole partitions (counted at every byte listed there: with more than `max_paths` objects the
    selector picks partitions, which re-reads objects already merged); a partition bigger than the
    budget alone is cut into passes of objects picked by path. An object bigger than the budget is
    a pass of its own (Firehose writes at most its buffer size, 128 MiB).
    """
    by_partition: dict[str, list[RawObject]] = {}
    for obj in sorted(objects, key=lambda o: o.key):
        by_partition.setdefault(obj.partition, []).append(obj)
    out: list[list[RawObject]] = []
    group: list[RawObject] = []
    group_bytes = group_partitions = 0
    for partition, members in by_partition.items():
        size = max(partition_bytes.get(partition, 0), sum(o.size for o in members))
        if group and (size > budget or group_bytes + size > budget or group_partitions >= max_partitions):
            out.append(group)
            group, group_bytes, group_partitions = [], 0, 0
        if size <= budget:
            group += members
            group_bytes += size
            group_partitions += 1
            continue
        chunk: list[RawObject] = []
        chunk_bytes = 0
        for obj in members:
            if chunk and (chunk_bytes + obj.size > budget or len(chunk) >= max_paths):
                out.append(chunk)
                chunk, chunk_bytes = [], 0
            chunk.append(obj)
            chunk_bytes += obj.size
        out.append(chunk)
    if group:
        out.append(group)
    return out


def _version_pairs(pairs: list[tuple[date, str]], suffix: str) -> Sql:
    """WHERE fragment on orders_latest_versions: exactly these (order_date, v + suffix) partitions.

    The IN lists let Athena prune partitions by each key; the pairs keep a date from matching
    another date's version.
    """
    if not pairs:
        return Sql("FALSE")
    dates = literal(sorted({d for d, _ in pairs}), top=True)
    versions = literal(sorted({v + suffix for _, v in pairs}), top=True)
    each = " OR ".join(f"(order_date = {literal(d)} AND v = {literal(v + suffix)})" for d, v in pairs)
    return Sql(f"order_date IN ({dates}) AND v IN ({versions}) AND ({each})")


def _selector(objects: list[RawObject], bucket: str) -> Sql:
    """WHERE fragment picking the new objects' events: their partitions, and their files."""
    if not objects:
        return Sql("FALSE")
    parts = sorted({(o.dt, o.hour) for o in objects})
    where = " OR ".join(f"(dt = {literal(dt)} AND hour = {literal(hour)})" for dt, hour in parts)
    if len(objects) > PATHS_IN_SQL:
        # Re-reading older events of these partitions is harmless (the merge is idempotent).
        return Sql(f"({where})")
    paths = ", ".join(literal(f"s3://{bucket}/{o.key}") for o in objects)
    return Sql(f'({where}) AND "$path" IN ({paths})')


def _merged_before(obj: RawObject, checkpoint: dict[str, Any], margin_s: float) -> bool:
    """Whether the interrupted run's finished passes merged `obj`: that run listed it (it is older
    than the listing by the margin) and its key is not past the greatest of those passes."""
    listed_at = float(checkpoint.get("listed_at", 0))
    return obj.key <= checkpoint.get("through", "") and obj.modified < listed_at - margin_s


def _version_bytes(settings: Settings) -> dict[tuple[str, str], int]:
    """(order_date, version) → bytes of its live rows and tombstones under orders_latest."""
    out: dict[tuple[str, str], int] = {}
    for key, size in _list_sizes(settings, LATEST_PREFIX):
        match = _VERSION_DIR.search(key)
        if match:
            pair = (match["date"], match["version"].removesuffix(DELETED))
            out[pair] = out.get(pair, 0) + size
    return out


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
