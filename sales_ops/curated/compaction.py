"""Compaction of the raw change events into `orders_latest` (docs/design.md §2.5): merge-on-read.

`orders_latest` is a view (sql/orders_latest.sql) over
- the **base**: `orders_base` (live rows) and `orders_tombstones` (deleted orders), one Glue
  partition per order_date pointing at a version `curated/orders_latest/order_date=D/v=<version>/`
  (tombstones at `v=<version>-deleted/`); `orders_latest_versions` (partitions order_date, v) is
  the table the SQL writes versions into;
- the **deltas**: `orders_delta`, one partition per pass of a cycle
  (`curated/orders_delta/delta=<name>/`), the latest state or tombstone of each order the pass's
  events touch, ranked among those events only (sql/compact_delta.sql).

A cycle writes deltas only: its cost is its raw objects, whatever the history. A **fold** merges
the live deltas into the base (sql/compact_orders.sql) once they reach `fold_fraction` of the base
rows of the dates they touch (LSM-style: each base row is rewritten about once per 1/f of its
partition's changes), swaps the partitions, then drops the folded delta partitions (readers in
between see the same answer: the deltas merge into the new base as into the old). `--full`
rebuilds the base from all raw events and baseline rows, in passes, and drops every delta.

Changes that break the contract of §2.1 never reach orders_latest and never stop the others: they
are recorded by name in `orders_rejected` (sql/compact_rejected.sql) and the `rejected_changes`
check lists them.

Every statement writes under a fresh name (a delta, a version): Athena's INSERT INTO only adds
files and a failed one can leave some behind, so a retried or resumed write never reads or
publishes a failed attempt's files; they are removed by retention.

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
from sales_ops.query import QueryError, Sql, SqlEngine, literal, render_named
from sales_ops.schema import LATEST_COLUMNS
from sales_ops.settings import CURATED_PREFIX, RAW_PREFIX, Settings

ORDERS_LATEST = "orders_latest"  # the view readers query
BASE_TABLE = "orders_base"
TOMBSTONES_TABLE = "orders_tombstones"
VERSIONS_TABLE = "orders_latest_versions"
DELTA_TABLE = "orders_delta"
REJECTED_TABLE = "orders_rejected"
LATEST_PREFIX = f"{CURATED_PREFIX}orders_latest/"
DELTA_PREFIX = f"{CURATED_PREFIX}orders_delta/"
REJECTED_PREFIX = f"{CURATED_PREFIX}orders_rejected/"
DELETED = "-deleted"
DATES_PER_WRITE = 50
# A fold runs once the live deltas hold this fraction of the base rows of the dates they touch
# (amortised, a base row is rewritten once per 1/f of its partition's changes), or once there are
# MAX_DELTAS of them (each is a Glue partition and files every orders_latest read opens).
FOLD_FRACTION = 0.25
MAX_DELTAS = 64
# Athena takes at most 262,144 bytes of SQL ("Service Quotas", Athena user guide): a selector lists
# at most this many object paths (~110 bytes each), beyond that whole partitions (~40 bytes each).
PATHS_IN_SQL = 1000
PARTITIONS_IN_SQL = 1000
MAX_HOURS = 24 * 365 * 10
# An object this much older than a listing's time was surely in it: S3's LastModified is when the
# upload began (a multipart one: when it was created), and clocks differ. Younger ones, which the
# listing may have missed, are merged again on resuming (harmless: the merge is idempotent).
LISTING_MARGIN_S = 300
MAX_QUARANTINED = 100  # more unreadable objects in one run is not stray data: stop and say so

COLUMNS: list[tuple[str, str]] = [(c.name, c.latest_type) for c in LATEST_COLUMNS]
DELTA_COLUMNS: list[tuple[str, str]] = [*COLUMNS, ("is_deleted", "boolean"), ("order_date", "date")]
REJECTED_COLUMNS: list[tuple[str, str]] = [
    ("order_id", "string"),
    ("event_id", "string"),
    ("sequence_number", "string"),
    ("event_time", "string"),
    ("reason", "string"),
    ("source", "string"),
]
# The view's columns, in Trino types (as Athena records them for a view).
VIEW_COLUMNS: list[tuple[str, str]] = [
    (c.name, "varchar" if c.latest_type == "string" else c.latest_type) for c in LATEST_COLUMNS
] + [("order_date", "date")]

NOTHING = Sql("FALSE")
_VERSION_DIR = re.compile(r"order_date=(?P<date>[^/]+)/v=(?P<version>[^/]+)/")
_DELTA_DIR = re.compile(r"delta=(?P<delta>[^/]+)/")


@dataclass
class CompactionReport:
    rows: int  # live rows of the base partitions rewritten (a fold or a rebuild), else 0
    partitions_rewritten: list[str]  # base partitions rewritten: "order_date=YYYY-MM-DD"
    bytes_read: int
    bytes_written: int  # Parquet written: new base versions (a fold, a rebuild) and deltas
    watermark_before: str | None
    watermark_after: str | None
    versions_removed: int
    seconds: float
    full: bool = False
    new_objects: int = 0
    version: str | None = None
    quarantined: list[dict[str, str]] = field(default_factory=list)  # raw objects moved aside
    passes: int = 0  # windows of raw objects, each scanned by its own statements
    deltas_written: list[str] = field(default_factory=list)  # orders_delta partitions: "delta=<name>"
    delta_rows: int = 0  # rows (orders) in those deltas
    dates_changed: list[str] = field(default_factory=list)  # order dates the run's deltas touch
    folded: list[str] = field(default_factory=list)  # delta partitions folded into the base
    rejected: int = 0  # changes recorded in orders_rejected by this run
    statements: int = 0  # SQL statements this run ran


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
    version: str  # the version (rebuild) or delta (cycle) this pass writes: fresh per attempt


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


@dataclass
class Merge:
    """What one statement of a fold or a rebuild merges: new rows, and where the base is."""

    new_events: Sql = NOTHING  # raw_orders selector (a rebuild's pass)
    new_snapshots: Sql = NOTHING  # orders_baseline selector (a rebuild's first pass)
    deltas: Sql = NOTHING  # orders_delta selector (a fold)
    with_base: bool = False  # the current base holds candidates (a fold; not a rebuild)
    raw_bytes: int = 0  # what the raw selector reads


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
        fold_fraction: float = FOLD_FRACTION,
        max_deltas: int = MAX_DELTAS,
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
        # A third of the cutoff for raw JSON (read whole; the rebuild's touched-dates query reads it
        # twice); the rest is for the Parquet a statement also reads.
        self.window_bytes = window_bytes or settings.scan_cutoff_bytes // 3
        self.fold_fraction = fold_fraction
        self.max_deltas = max_deltas
        self.bytes_read = 0
        self.statements = 0
        self.state = CompactionState()
        self.quarantined: list[Quarantined] = []
        self.partition_bytes: dict[str, int] = {}  # "dt=…/hour=…" → bytes listed there
        self.progress = progress or (lambda message: None)
        self.listed_at = 0.0  # when plan() listed raw/ (checkpoints of passes record it)
        self.listing_margin_s = listing_margin_s
        self.deltas_written: list[str] = []
        self.delta_rows = 0
        self.delta_bytes = 0
        self.dates_changed: set[date] = set()
        self.rejected = 0

    def named(self, name: str, **params: Any) -> Any:
        """One statement of the pipeline's own SQL, counted (statements, bytes scanned)."""
        result = self.engine.named(name, **params)
        self.bytes_read += result.bytes_scanned
        self.statements += 1
        return result

    def run(self) -> CompactionReport:
        started = time.monotonic()
        plan = self.plan()
        before = self.state.watermark
        version = None
        rewritten: list[date] = []
        rows = written = 0
        folded: list[str] = []
        if plan is not None and plan.full:
            self.write_all(plan)
            for i in range(0, len(plan.dates), self.dates_per_write):
                self.swap(plan, plan.dates[i : i + self.dates_per_write])
            rows, written = self.finish(plan)
            folded = self.drop_deltas(live_deltas(self.settings))
            version, rewritten = plan.version, plan.dates
        elif plan is not None:
            self.write_deltas(plan)
        if not self.full and self.fold_due():
            fold = self.fold()
            if fold is not None:
                rows, written, rewritten, folded = fold
        if self.deltas_written or rewritten or folded:
            put_latest_view(self.settings, self.state)
        if self.deltas_written or rewritten:
            self.state.last_run = {
                "deltas": list(self.deltas_written),
                "dates": sorted({d.isoformat() for d in (*self.dates_changed, *rewritten)}),
                "rebuilt": sorted(d.isoformat() for d in rewritten) if self.full else [],
            }
            self.state.save(self.settings)
        removed = self.cleanup()
        return CompactionReport(
            rows=rows,
            partitions_rewritten=[f"order_date={d.isoformat()}" for d in rewritten],
            bytes_read=self.bytes_read,
            bytes_written=written + self.delta_bytes,
            watermark_before=before,
            watermark_after=self.state.watermark,
            versions_removed=removed,
            seconds=time.monotonic() - started,
            full=self.full,
            new_objects=len({o.key for o in plan.objects} | set(plan.merged)) if plan else 0,
            version=version,
            quarantined=[asdict(q) for q in self.quarantined],
            passes=(plan.passes_done + len(plan.windows)) if plan else 0,
            deltas_written=[f"delta={d}" for d in self.deltas_written],
            delta_rows=self.delta_rows,
            dates_changed=sorted(d.isoformat() for d in self.dates_changed),
            folded=[f"delta={d}" for d in folded],
            rejected=self.rejected,
            statements=self.statements,
        )

    # 1. what is new, in passes that each stay under the scan cutoff ---------------------------
    def plan(self) -> Plan | None:
        ensure_tables(self.settings)
        self.state = CompactionState.load(self.settings)
        pending = self.state.passes or {}
        if pending:  # an interrupted rebuild in passes: go on where it stopped (it stays a rebuild)
            self.full = True
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
        # Every pass writes under a fresh name, resumed or retried ones too (see the module doc).
        windows = [Window(group, _selector(group, self.settings.bucket), new_version()) for group in groups]
        current = current_versions(self.settings)
        latest = {} if self.full else dict(current)
        latest |= {date.fromisoformat(d): v for d, v in pending.get("latest", {}).items()}
        dates = sorted(date.fromisoformat(d) for d in pending.get("dates", []))
        return Plan(
            version, objects, windows, current, self.full, exports, snapshots, latest, dates,
            merged, done_exports, done,
        )  # fmt: skip

    # 2a. a cycle: one delta per pass -----------------------------------------------------------
    def write_deltas(self, plan: Plan) -> None:
        """Each pass's delta (and its rejected changes), recorded in the state as it is written: a
        crash loses at most the pass under way, which the next run writes again."""
        for number, window in enumerate(plan.windows, 1):
            if self.lock:
                self.lock.check()
            if len(plan.windows) > 1:
                self.progress(
                    f"pass {number}/{len(plan.windows)}: {len(window.objects)} raw object(s), "
                    f"{self._raw_bytes(window):,} bytes"
                )
            snapshots = plan.snapshots_for(window)

            def step(w: Window, snapshots: Sql = snapshots) -> None:
                self._write_delta(w, snapshots)

            self._readable(window, step)
            self._record(window.objects, plan.exports if number == 1 else [])

    def _write_delta(self, window: Window, snapshots: Sql) -> None:
        events, name = window.selector, window.version
        self.rejected += _rows(
            self.named("compact_rejected", new_events=events, new_snapshots=snapshots, delta=name)
        )
        self.named("compact_delta", new_events=events, new_snapshots=snapshots, delta=name)
        counts = self.named("compact_delta_rows", deltas=[window.version])
        by_date = {str(d): int(n) for d, n in counts.rows}
        if by_date:
            self.deltas_written.append(window.version)
            self.delta_rows += sum(by_date.values())
            files = _list_sizes(self.settings, f"{DELTA_PREFIX}delta={name}/")
            self.delta_bytes += sum(size for _, size in files)
            self.dates_changed |= {date.fromisoformat(d) for d in by_date if d != "None"}
            self.state.deltas[window.version] = by_date

    def _record(self, objects: list[RawObject], exports: list[str]) -> None:
        if self.lock:
            self.lock.check()
        state = self.state
        for obj in objects:
            state.processed[obj.key] = obj.etag
        if state.processed:
            state.watermark = max(state.processed)
        state.baselines = sorted(set(state.baselines) | set(exports))
        state.horizon = horizon(state.processed, self.lookback) or state.horizon
        if state.horizon:  # what lies before the horizon is no longer listed, so no longer kept
            state.processed = {
                k: e for k, e in state.processed.items() if k[len(RAW_PREFIX) :] > state.horizon
            }
        state.save(self.settings)

    def _readable(self, window: Window, step: Callable[[Window], None]) -> None:
        """Run `step` on the pass; a raw object the engine cannot read is moved aside (quarantine)
        and the pass goes on without it."""
        for _ in range(MAX_QUARANTINED + 1):
            try:
                step(window)
                return
            except QueryError as exc:
                moved = quarantine_unreadable(self.settings, exc, [o.key for o in window.objects])
                if not moved or len(self.quarantined) >= MAX_QUARANTINED:
                    raise
                self.quarantined += moved
                gone = {q.source for q in moved}
                window.objects = [o for o in window.objects if o.key not in gone]
                window.selector = _selector(window.objects, self.settings.bucket)
                window.version = new_version()  # the failed statement may have left files
        raise CompactionError(f"more than {MAX_QUARANTINED} unreadable raw objects")

    # 2b. a fold: the live deltas into the base -------------------------------------------------
    def fold_due(self) -> bool:
        deltas = self.state.deltas
        if not deltas:
            return False
        if len(deltas) >= self.max_deltas:
            return True
        rows = sum(sum(by_date.values()) for by_date in deltas.values())
        dates = {d for by_date in deltas.values() for d in by_date}
        base = sum(self.state.base_rows.get(d, 0) for d in dates)
        # At least one base row: deltas of new dates only (no base yet) fold at the fraction of one
        # row, not at any size (a fraction of 0 rows is 0, which made every such cycle a fold).
        return rows >= self.fold_fraction * max(base, 1)

    def fold(self) -> tuple[int, int, list[date], list[str]] | None:
        """Merge every live delta into the base: new versions of the dates they touch, swapped in,
        then the deltas dropped. Returns (rows, bytes written, dates rewritten, deltas folded)."""
        deltas = live_deltas(self.settings)
        if not deltas:
            self.state.deltas = {}
            self.state.save(self.settings)
            return None
        version = new_version()  # fresh per attempt: a failed fold's files are never published
        plan = Plan(version, [], [], current_versions(self.settings), False)
        plan.latest = dict(plan.current)
        merge = Merge(deltas=Sql(f"delta IN ({literal(deltas, top=True)})"), with_base=True)
        self.progress(f"folding {len(deltas)} delta(s) into the base")
        dates = self._touched(plan, merge)
        plan.dates = dates
        for batch in self._batches(plan, dates, merge.raw_bytes):
            self.write(plan, merge, batch, version)
        self.progress(f"swapping {len(dates)} base partition(s) to version {version}")
        for i in range(0, len(dates), self.dates_per_write):
            self.swap(plan, dates[i : i + self.dates_per_write])
        rows, written = self._counts(plan)
        return rows, written, dates, self.drop_deltas(deltas)

    def drop_deltas(self, deltas: list[str]) -> list[str]:
        """Unregister folded deltas (their files go with retention: a running query may read them)."""
        if not deltas:
            return []
        if self.lock:
            self.lock.check()
        self.progress(f"dropping {len(deltas)} folded delta(s)")
        glue.delete_partitions(self.settings, DELTA_TABLE, [[d] for d in deltas])
        self.state.deltas = {k: v for k, v in self.state.deltas.items() if k not in deltas}
        self.state.save(self.settings)
        return deltas

    # 2c. a rebuild (--full): every raw event into new base versions, in passes -----------------
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
            self._readable(window, lambda w: self._write_pass(plan, w))
            self._checkpoint(plan, window, number)
        plan.objects = [o for w in plan.windows for o in w.objects]  # less what was quarantined

    def _write_pass(self, plan: Plan, window: Window) -> None:
        merge = Merge(window.selector, plan.snapshots_for(window), raw_bytes=self._raw_bytes(window))
        dates = self._touched(plan, merge)
        plan.dates = sorted(set(plan.dates) | set(dates))
        for batch in self._batches(plan, dates, merge.raw_bytes):
            self.write(plan, merge, batch, window.version)
        rejected = self.named(
            "compact_rejected",
            new_events=merge.new_events,
            new_snapshots=merge.new_snapshots,
            delta=window.version,
        )
        self.rejected += _rows(rejected)

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

    # shared by folds and rebuilds --------------------------------------------------------------
    def _touched(self, plan: Plan, merge: Merge) -> list[date]:
        """The dates the new rows touch, and those where the base holds one of their orders."""
        result = self.named(
            "compact_touched",
            new_events=merge.new_events,
            new_snapshots=merge.new_snapshots,
            deltas=merge.deltas,
            with_base=Sql("TRUE" if merge.with_base else "FALSE"),
            run_versions=_with_tombstones(plan.written_versions() if plan.full else []),
        )
        return sorted({_as_date(d) for (d,) in result.rows if d is not None})

    def _batches(self, plan: Plan, dates: list[date], raw_bytes: int) -> list[list[date]]:
        """Dates in batches of at most `dates_per_write` whose statement stays under the cutoff: the
        pass's raw objects plus the Parquet rows each date is merged with."""
        room = self.settings.scan_cutoff_bytes - raw_bytes
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

    def write(self, plan: Plan, merge: Merge, batch: list[date], version: str) -> None:
        """A batch of dates as `version`: their rows merged with the new rows (compact_orders.sql)."""
        merged_into = {d: plan.latest[d] for d in batch if d in plan.latest}
        self.named(
            "compact_orders",
            new_events=merge.new_events,
            new_snapshots=merge.new_snapshots,
            deltas=merge.deltas,
            dates=batch,
            current_rows=_known(merged_into),
            with_base=Sql("TRUE" if merge.with_base else "FALSE"),
            # a rebuild's base is what its own earlier passes (and batches) wrote
            run_versions=_with_tombstones(plan.written_versions() if plan.full else []),
            version=version,
            deleted_version=version + DELETED,
        )
        for d in batch:
            plan.latest[d] = version

    def swap(self, plan: Plan, dates: list[date]) -> None:
        """Point each date's base and tombstone partitions at the last version written for it."""
        if self.lock:
            self.lock.check()
        for name, suffix in ((BASE_TABLE, ""), (TOMBSTONES_TABLE, DELETED)):
            table = glue.require_table(self.settings, name)
            entries = [
                glue.partition_input(
                    table,
                    [d.isoformat()],
                    self.settings.s3_uri(
                        f"{LATEST_PREFIX}order_date={d.isoformat()}/v={plan.latest[d]}{suffix}/"
                    ),
                    {"compaction_version": plan.latest[d]},
                )
                for d in dates
            ]
            glue.put_partitions(self.settings, table, entries)

    def _counts(self, plan: Plan) -> tuple[int, int]:
        """Live rows and bytes of the versions this run swapped in; the state keeps rows per date."""
        rewritten = plan.rewritten()
        counts = self.named("compact_rows", versions=sorted(set(rewritten.values())))
        rows = 0
        for d, v, n in counts.rows:
            if rewritten.get(_as_date(d)) == v:
                rows += int(n)
                self.state.base_rows[_as_date(d).isoformat()] = int(n)
        for d in rewritten:
            self.state.base_rows.setdefault(d.isoformat(), 0)
        versions = set(rewritten.values())
        written = sum(
            size
            for key, size in _list_sizes(self.settings, LATEST_PREFIX)
            if (m := _VERSION_DIR.search(key)) and m["version"].removesuffix(DELETED) in versions
        )
        return rows, written

    # 3. record what a rebuild compacted ---------------------------------------------------------
    def finish(self, plan: Plan) -> tuple[int, int]:
        if self.lock:
            self.lock.check()
        rewritten = plan.rewritten()
        if plan.full:  # dates with no event left at all lose their partition
            gone = [[d.isoformat()] for d in plan.current if d not in rewritten]
            for name in (BASE_TABLE, TOMBSTONES_TABLE):
                glue.delete_partitions(self.settings, name, gone)
            self.state.base_rows = {}
        rows, written = self._counts(plan)
        state = self.state
        state.processed |= plan.merged  # by the passes of an interrupted run, resumed here
        state.passes = None
        self._record(plan.objects, [*plan.exports, *plan.merged_exports])
        return rows, written

    # 4. retention ------------------------------------------------------------------------------
    def cleanup(self) -> int:
        """Remove versions superseded more than `retention` ago (never a current one), and the
        files of deltas dropped (folded) or never registered (a failed write) as long ago."""
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
        return len(doomed) + self._remove_dead_deltas(cutoff)

    def _remove_dead_deltas(self, cutoff: datetime) -> int:
        live = set(live_deltas(self.settings))
        dead: dict[str, list[str]] = {}
        for key, _ in _list_sizes(self.settings, DELTA_PREFIX):
            match = _DELTA_DIR.search(key)
            if match and match["delta"] not in live:
                written = version_time(match["delta"])
                if written is not None and written <= cutoff:
                    dead.setdefault(match["delta"], []).append(key)
        _delete_keys(self.settings, [k for ks in dead.values() for k in ks])
        return len(dead)

    def _remove(self, doomed: list[tuple[str, str]], keys: dict[tuple[str, str], list[str]]) -> None:
        _delete_keys(self.settings, [k for pair in doomed for k in keys[pair]])
        values = [[day, v] for day, version in doomed for v in (version, version + DELETED)]
        known = {tuple(p["Values"]) for p in glue.list_partitions(self.settings, VERSIONS_TABLE)}
        glue.delete_partitions(self.settings, VERSIONS_TABLE, [v for v in values if tuple(v) in known])

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
    fold_fraction: float = FOLD_FRACTION,
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
            fold_fraction=fold_fraction,
        )
        report = job.run()
    from sales_ops.curated.live import put_live_view  # it builds on this module

    put_live_view(settings, job.state)  # orders_live's raw tail starts at the new watermark
    return report


def ensure_tables(settings: Settings) -> None:
    """The curated tables and the orders_latest view exist in Glue; raw_orders must (the crawler's,
    or the backfill's for a table whose rows never streamed). A lake from before the deltas (its
    orders_latest a partitioned table) is moved over: its partitions become the base's."""
    if glue.get_table(settings, glue.RAW_TABLE) is None:
        raise CompactionError(
            f"{settings.database}.{glue.RAW_TABLE} is not in the catalog yet: run `sales-ops crawl` first"
        )
    if glue.get_table(settings, baseline.BASELINE_TABLE) is None:
        baseline.ensure_tables(settings)
    location = settings.s3_uri(LATEST_PREFIX)
    by_date = [("order_date", "date")]
    tables = [
        (BASE_TABLE, COLUMNS, location, by_date),
        (TOMBSTONES_TABLE, COLUMNS, location, by_date),
        (VERSIONS_TABLE, COLUMNS, location, [*by_date, ("v", "string")]),
        (DELTA_TABLE, DELTA_COLUMNS, settings.s3_uri(DELTA_PREFIX), [("delta", "string")]),
        (REJECTED_TABLE, REJECTED_COLUMNS, settings.s3_uri(REJECTED_PREFIX), [("delta", "string")]),
    ]
    for name, columns, where, keys in tables:
        if glue.get_table(settings, name) is None:
            glue.put_table(settings, glue.parquet_table_input(name, columns, where, keys))
    latest = glue.get_table(settings, ORDERS_LATEST)
    if latest is not None and glue.view_sql(latest) is None:
        _move_to_base(settings)
        latest = None
    put_latest_view(settings, CompactionState.load(settings), latest)


def put_latest_view(
    settings: Settings, state: CompactionState, current: dict[str, Any] | None = None
) -> None:
    """Write the orders_latest view for the live deltas of `state` (their dates are literals in its
    text), unless the catalog holds that text already."""
    dates = sorted(
        {date.fromisoformat(d) for by_date in state.deltas.values() for d in by_date if d != "None"}
    )
    sql = render_named("orders_latest", settings.database, delta_dates=dates)
    current = current if current is not None else glue.get_table(settings, ORDERS_LATEST)
    if current is None or glue.view_sql(current) != sql:
        glue.put_table(settings, glue.view_input(ORDERS_LATEST, sql, VIEW_COLUMNS, settings.database))


def _move_to_base(settings: Settings) -> None:
    """orders_latest was the base table itself: its partitions (and their tombstones) become the
    base's, then the name is the view's."""
    partitions = glue.list_partitions(settings, ORDERS_LATEST)
    for name, suffix in ((BASE_TABLE, ""), (TOMBSTONES_TABLE, DELETED)):
        table = glue.require_table(settings, name)
        entries = [
            glue.partition_input(
                table, p["Values"], p["StorageDescriptor"]["Location"].rstrip("/") + suffix + "/"
            )
            for p in partitions
        ]
        glue.put_partitions(settings, table, entries)
    glue.delete_table(settings, ORDERS_LATEST)


def current_versions(settings: Settings) -> dict[date, str]:
    """Each order_date partition of the base → the version it points at ({} before any)."""
    if glue.get_table(settings, BASE_TABLE) is None:
        return {}
    out = {}
    for partition in glue.list_partitions(settings, BASE_TABLE):
        match = _VERSION_DIR.search(partition["StorageDescriptor"]["Location"])
        if match:
            out[date.fromisoformat(partition["Values"][0])] = match["version"]
    return out


def live_deltas(settings: Settings) -> list[str]:
    """The registered partitions of orders_delta: what orders_latest merges with the base."""
    if glue.get_table(settings, DELTA_TABLE) is None:
        return []
    return sorted(p["Values"][0] for p in glue.list_partitions(settings, DELTA_TABLE))


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


def _known(versions: dict[date, str]) -> Sql:
    """WHERE fragment on orders_latest_versions: exactly these dates' versions, live rows and
    tombstones. The IN lists let Athena prune partitions by each key; the pairs keep a date from
    matching another date's version."""
    if not versions:
        return Sql("FALSE")
    pairs = sorted((d, v + suffix) for d, v in versions.items() for suffix in ("", DELETED))
    dates = literal(sorted(versions), top=True)
    names = literal(sorted({v for _, v in pairs}), top=True)
    each = " OR ".join(f"(order_date = {literal(d)} AND v = {literal(v)})" for d, v in pairs)
    return Sql(f"order_date IN ({dates}) AND v IN ({names}) AND ({each})")


def _with_tombstones(versions: list[str]) -> list[str]:
    return sorted({v + suffix for v in versions for suffix in ("", DELETED)})


def _rows(result: Any) -> int:
    """The row count an INSERT reports (0 when the engine reports none)."""
    try:
        return int(result.rows[0][0])
    except (IndexError, TypeError, ValueError):
        return 0


def _delete_keys(settings: Settings, keys: list[str]) -> None:
    s3 = settings.client("s3")
    for i in range(0, len(keys), 1000):
        objects = [{"Key": k} for k in keys[i : i + 1000]]
        s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": objects, "Quiet": True})


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
