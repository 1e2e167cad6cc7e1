"""What one compaction run merges, and in how many passes (docs/design.md §2.5).

The raw objects not compacted yet: listed from the state's horizon (ListObjectsV2 StartAfter), since
a late object can land in an hour already compacted; those whose key and ETag the state holds are
left out. Then cut into passes (`passes`), each scanning at most a budget under the workgroup's
per-query cutoff, with the SQL that selects each pass's events (`selector`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sales_ops.catalog import glue
from sales_ops.curated.state import CompactionState, RawObject, horizon, list_raw
from sales_ops.query.templates import Sql, literal
from sales_ops.settings import RAW_PREFIX, Settings

# Athena takes at most 262,144 bytes of SQL ("Service Quotas", Athena user guide): a selector lists
# at most this many object paths (~110 bytes each), beyond that whole partitions (~40 bytes each).
PATHS_IN_SQL = 1000
PARTITIONS_IN_SQL = 1000
NOTHING = Sql("FALSE")  # a selector that picks no row
# An object this much older than a listing's time was surely in it: S3's LastModified is when the
# upload began (a multipart one: when it was created), and clocks differ. Younger ones, which the
# listing may have missed, are merged again on resuming (harmless: the merge is idempotent).
LISTING_MARGIN_S = 300


def pass_budget(settings: Settings) -> int:
    """What one statement of work split under the workgroup's per-query cutoff may read: a third of
    it (compaction's passes, a rollup's writes and passes; the rest is margin for what a statement
    reads besides, and for estimates)."""
    return settings.scan_cutoff_bytes // 3


@dataclass
class Window:
    """Raw objects merged by one pass: a statement scanning them stays under the per-query cutoff."""

    objects: list[RawObject]
    selector: Sql  # WHERE fragment on raw_orders picking exactly these objects' events
    version: str  # the version (rebuild) or delta (cycle) this pass writes: fresh per attempt


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

    def checkpoint(self, window: Window, number: int, listed_at: float) -> dict[str, Any]:
        """Pass `number` (`window`) finished: what the state records so that a crash costs only the
        pass under way. Passes take the objects in key order, so what this run merged is every
        object it listed up to the greatest key of its finished passes: that key and the listing's
        time say it (the state stays small however many objects a rebuild reads; a resumed run's
        own listing and key: what it skipped lies below them too)."""
        self.merged |= {o.key: o.etag for o in window.objects}
        if number == 1:  # the first pass merged the new snapshots
            self.merged_exports = sorted(set(self.merged_exports) | set(self.exports))
        return {
            "version": self.version,
            "full": self.full,
            "done": self.passes_done + number,
            "through": max((o.key for w in self.windows[:number] for o in w.objects), default=""),
            "listed_at": listed_at,
            "exports": self.merged_exports,
            "latest": {d.isoformat(): v for d, v in self.rewritten().items()},
            "dates": [d.isoformat() for d in self.dates],
        }

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


def selector(objects: list[RawObject], bucket: str) -> Sql:
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


def merged_before(obj: RawObject, checkpoint: dict[str, Any], margin_s: float) -> bool:
    """Whether the interrupted run's finished passes merged `obj`: that run listed it (it is older
    than the listing by the margin) and its key is not past the greatest of those passes."""
    listed_at = float(checkpoint.get("listed_at", 0))
    return obj.key <= checkpoint.get("through", "") and obj.modified < listed_at - margin_s


def raw_bytes(window: Window, partition_bytes: dict[str, int]) -> int:
    """What the pass's selector reads of raw/: its objects, or all of its partitions (`selector`)."""
    if len(window.objects) <= PATHS_IN_SQL:
        return sum(o.size for o in window.objects)
    return sum(partition_bytes.get(p, 0) for p in {o.partition for o in window.objects})


def new_objects(
    settings: Settings,
    state: CompactionState,
    full: bool,
    lookback: timedelta,
    partition_bytes: dict[str, int],
) -> list[RawObject]:
    """The raw objects a run merges (all of them for a rebuild); `partition_bytes` counts the bytes
    listed per partition ("dt=…/hour=…")."""
    if full:
        listed = list_raw(settings)
    else:
        start = state.horizon
        if state.watermark:  # a longer lookback than last time reaches further back
            wanted = horizon({state.watermark: ""}, lookback)
            start = min(start, wanted) if start and wanted else start or wanted
        listed = list_raw(settings, start)
    for o in listed:
        partition_bytes[o.partition] = partition_bytes.get(o.partition, 0) + o.size
    # Before the stored horizon nothing is remembered: those objects count as new, and merging
    # them again is harmless (idempotent), only slower.
    return [o for o in listed if full or state.processed.get(o.key) != o.etag]


def register_raw_partitions(settings: Settings, objects: list[RawObject]) -> None:
    """Athena sees only catalogued partitions: add any the crawler has not added yet."""
    table = glue.require_table(settings, glue.RAW_TABLE)
    known = {tuple(p["Values"]) for p in glue.list_partitions(settings, glue.RAW_TABLE)}
    missing = sorted({(o.dt, o.hour) for o in objects} - known)
    entries = [
        glue.partition_input(table, [dt, hour], settings.s3_uri(f"{RAW_PREFIX}dt={dt}/hour={hour}/"))
        for dt, hour in missing
    ]
    glue.put_partitions(settings, table, entries)
