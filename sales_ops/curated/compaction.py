"""Compaction of the raw change events into `orders_latest` (docs/design.md §2.5): merge-on-read.

`orders_latest` is a view (sql/orders_latest.sql) over the **base** (one version per order_date)
and the **deltas** (`orders_delta`, one partition per pass of a cycle: the latest state or tombstone
of each order the pass's events touch, ranked among those events only, sql/compact_delta.sql).
Their tables and files: tables.py; what a run merges, in passes: planning.py; retention.py
removes what is superseded.

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

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated import baseline
from sales_ops.curated.buckets import (
    TAIL_SHARE,
    Batch,
    Layout,
    as_date,
    batches,
    count_orphans,
    count_rows,
    in_bucket,
    known_versions,
)
from sales_ops.curated.live import put_live_view
from sales_ops.curated.lock import LEASE_S, LOCK_KEY, CompactionError, S3Lock
from sales_ops.curated.planning import (
    LISTING_MARGIN_S,
    CompactionReport,
    Merge,
    Plan,
    Window,
    merged_before,
    new_objects,
    pass_budget,
    passes,
    raw_bytes,
    register_raw_partitions,
    selector,
)
from sales_ops.curated.quarantine import Quarantined, quarantine_unreadable
from sales_ops.curated.retention import remove_superseded
from sales_ops.curated.state import LOOKBACK_HOURS, CompactionState, RawObject, dated, horizon
from sales_ops.curated.tables import (
    BASE_TABLE,
    DELETED,
    DELTA_PREFIX,
    DELTA_TABLE,
    LATEST_PREFIX,
    TOMBSTONES_TABLE,
    current_versions,
    ensure_tables,
    list_sizes,
    live_deltas,
    new_version,
    put_latest_view,
    version_layout,
    with_tombstones,
)
from sales_ops.query import QueryError, Sql, SqlEngine, literal
from sales_ops.settings import RAW_PREFIX, Settings

DATES_PER_WRITE = 50
# A fold runs once the live deltas hold this fraction of the base rows of the dates they touch
# (amortised, a base row is rewritten once per 1/f of its partition's changes), or once there are
# MAX_DELTAS of them (each is a Glue partition and files every orders_latest read opens).
FOLD_FRACTION = 0.25
MAX_DELTAS = 64
# Every statement of a fold reads the live deltas whole, so they fold once they hold this share of
# the scan cutoff, whatever the rows (at a high rate the deltas would otherwise outgrow a statement).
DELTA_SHARE = 0.25
ROW_BYTES = 100  # Parquet bytes a row when the base has none yet to measure (about 60 measured)
MAX_HOURS = 24 * 365 * 10
MAX_QUARANTINED = 100  # more unreadable objects in one run is not stray data: stop and say so


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
        self.window_bytes = window_bytes or pass_budget(settings)
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
        self.folds: list[tuple[int, int, list[date], list[str]] | None] = []

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
            self.folds.append(self.fold())
        for fold in self.folds:  # folds between a backlog's passes (write_deltas), then this one
            if fold is not None:
                rows, written = rows + fold[0], written + fold[1]
                rewritten = sorted({*rewritten, *fold[2]})
                folded = [*folded, *fold[3]]
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
        for obj in new_objects(self.settings, self.state, self.full, self.lookback, self.partition_bytes):
            if pending and merged_before(obj, pending, self.listing_margin_s):
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
        register_raw_partitions(self.settings, objects)
        snapshots = Sql("TRUE") if self.full else Sql(f"export_id IN ({literal(exports, top=True)})")
        version = pending.get("version") or new_version()
        done = int(pending.get("done", 0))
        groups = passes(objects, self.partition_bytes, self.window_bytes) or [[]]
        # Every pass writes under a fresh name, resumed or retried ones too (see the module doc).
        windows = [Window(group, selector(group, self.settings.bucket), new_version()) for group in groups]
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
                    f"{raw_bytes(window, self.partition_bytes):,} bytes"
                )
            snapshots = plan.snapshots_for(window)

            def step(w: Window, snapshots: Sql = snapshots) -> None:
                self._write_delta(w, snapshots)

            self._readable(window, step)
            self._record(window.objects, plan.exports if number == 1 else [])
            if number < len(plan.windows) and self._deltas_full():
                # a backlog's deltas would outgrow what a fold's statements may read: fold now
                self.folds.append(self.fold())
                put_latest_view(self.settings, self.state)

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
            files = list_sizes(self.settings, f"{DELTA_PREFIX}delta={name}/")
            size = sum(size for _, size in files)
            self.delta_bytes += size
            self.dates_changed |= dated(by_date)
            self.state.deltas[window.version] = by_date
            self.state.delta_bytes[window.version] = size

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
                window.selector = selector(window.objects, self.settings.bucket)
                window.version = new_version()  # the failed statement may have left files
        raise CompactionError(f"more than {MAX_QUARANTINED} unreadable raw objects")

    # 2b. a fold: the live deltas into the base -------------------------------------------------
    def fold_due(self) -> bool:
        deltas = self.state.deltas
        if not deltas:
            return False
        if len(deltas) >= self.max_deltas:
            return True
        if self._deltas_full():
            return True
        rows = sum(sum(by_date.values()) for by_date in deltas.values())
        dates = {d for by_date in deltas.values() for d in by_date}
        base = sum(self.state.base_rows.get(d, 0) for d in dates)
        # At least one base row: deltas of new dates only (no base yet) fold at the fraction of one
        # row, not at any size (a fraction of 0 rows is 0, which made every such cycle a fold).
        return rows >= self.fold_fraction * max(base, 1)

    def _deltas_full(self) -> bool:
        """The live deltas hold DELTA_SHARE of the cutoff: every statement of a fold reads them."""
        size = sum(self.state.delta_bytes.get(d, 0) for d in self.state.deltas)
        return size >= DELTA_SHARE * self.settings.scan_cutoff_bytes

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
        selector = Sql(f"delta IN ({literal(deltas, top=True)})")
        delta_bytes = sum(self.state.delta_bytes.get(d, 0) for d in deltas)
        layout = version_layout(self.settings)  # every version's buckets and their bytes
        touched = {d: plan.current[d] for d in self.state.delta_dates() if d in plan.current}
        budget = self.settings.scan_cutoff_bytes - delta_bytes
        orphans = count_orphans(self.named, selector, touched, layout, budget)
        merge = Merge(deltas=selector, with_base=orphans > 0, raw_bytes=delta_bytes)
        self.progress(f"folding {len(deltas)} delta(s) into the base")
        dates = self._touched(plan, merge)
        plan.dates = dates
        self._write_batches(plan, merge, dates, version, layout)
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
        self.state.delta_bytes = {k: v for k, v in self.state.delta_bytes.items() if k not in deltas}
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
                    f"{raw_bytes(window, self.partition_bytes):,} bytes"
                )
            self._readable(window, lambda w: self._write_pass(plan, w))
            self._checkpoint(plan, window, number)
        plan.objects = [o for w in plan.windows for o in w.objects]  # less what was quarantined

    def _write_pass(self, plan: Plan, window: Window) -> None:
        merge = Merge(
            window.selector, plan.snapshots_for(window), raw_bytes=raw_bytes(window, self.partition_bytes)
        )
        dates = self._touched(plan, merge)
        plan.dates = sorted(set(plan.dates) | set(dates))
        self._write_batches(plan, merge, dates, window.version)
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
        self.state.passes = plan.checkpoint(window, number, self.listed_at)
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
            run_versions=with_tombstones(plan.written_versions() if plan.full else []),
        )
        return sorted({as_date(d) for (d,) in result.rows if d is not None})

    def _write_batches(
        self, plan: Plan, merge: Merge, dates: list[date], version: str, layout: Layout | None = None
    ) -> None:
        """Every bucket of these dates merged with the new rows, as `version`."""
        sources = dict(plan.latest)  # what each date is merged into, before this run's writes
        if layout is None:
            layout = version_layout(self.settings) if plan.latest else {}
        cutoff = self.settings.scan_cutoff_bytes
        # Kept free in each bucket's share for orders_live's readers, whose slices read the raw tail
        # whole. Not in a rebuild: its deltas are none, and the next fold re-cuts what it touches.
        tail = 0 if plan.full else int(TAIL_SHARE * cutoff)
        for batch in batches(
            dates, plan.latest, layout, cutoff - merge.raw_bytes, self._growth, self.dates_per_write, tail
        ):
            self.write(plan, merge, batch, version, sources)

    def _growth(self, d: date, current_bytes: int) -> int:
        """Bytes the live deltas may add to a date at this fold (0 in a rebuild: its passes grow a
        date by what each reads, and each pass splits what the last one made too big)."""
        rows = sum(by_date.get(d.isoformat(), 0) for by_date in self.state.deltas.values())
        if not rows or self.full:
            return 0
        base_rows = self.state.base_rows.get(d.isoformat(), 0)
        return rows * (current_bytes // base_rows if base_rows and current_bytes else ROW_BYTES)

    def write(self, plan: Plan, merge: Merge, batch: Batch, version: str, sources: dict[date, str]) -> None:
        """A batch of dates, one bucket of each, as `version`: their rows merged with the new rows
        (compact_orders.sql)."""
        merged_into = {d: sources[d] for d in batch.dates if d in sources}
        self.named(
            "compact_orders",
            new_events=merge.new_events,
            new_snapshots=merge.new_snapshots,
            deltas=merge.deltas,
            dates=batch.dates,
            in_bucket=in_bucket(batch.read),
            current_rows=known_versions(merged_into, {d: [batch.read] for d in merged_into}),
            with_base=Sql("TRUE" if merge.with_base else "FALSE"),
            # a rebuild's base is what its own earlier passes (and batches) wrote
            run_versions=with_tombstones(plan.written_versions() if plan.full else []),
            version=version,
            deleted_version=version + DELETED,
            bucket=batch.bucket_of(),
        )
        for d in batch.dates:
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
        layout = version_layout(self.settings)
        counted, written = count_rows(self.named, rewritten, layout, self.settings.scan_cutoff_bytes)
        for d in rewritten:
            self.state.base_rows[d.isoformat()] = counted.get(d, 0)
        return sum(counted.values()), written

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
        """Remove versions superseded more than `retention` ago, and dead deltas' files (retention.py)."""
        return remove_superseded(self.settings, self.retention)


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
    # orders_live's raw tail starts at the new watermark (the run's plan ensured the tables).
    put_live_view(settings, job.state, tables_ensured=True)
    return report


def _rows(result: Any) -> int:
    """The row count an INSERT reports (0 when the engine reports none)."""
    try:
        return int(result.rows[0][0])
    except (IndexError, TypeError, ValueError):
        return 0
