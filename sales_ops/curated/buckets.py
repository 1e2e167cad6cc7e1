"""Buckets of orders_latest's versions (docs/design.md §2.5): ranges of `order_hash` (the first
four hex digits of md5(order_id), schema.SQL_RULES), written as `…/v=<version>/bucket=<first>-<last>/`
(orders_latest_versions' third partition key), all of one width within a version. A date grown
past what one statement should read is written in halves, quarters… of its buckets, so a fold (or
a rebuild's pass) merges any date a bucket at a time; and since an order's bucket is a function of
its order_id, any statement can go a slice of the orders at a time and give the same answer.

Here: the ranges and their SQL, how a fold's dates are cut into statements (`batches`), and the
slices (`slices`) and groups (`packs`) the other statements of a fold read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sales_ops.curated.state import CompactionState
from sales_ops.curated.tables import (
    DELETED,
    LATEST_PREFIX,
    VERSIONS_TABLE,
    current_versions,
    version_layout,
)
from sales_ops.query.athena_rules import MAX_PARTITIONS_PER_WRITE
from sales_ops.query.templates import Sql, literal
from sales_ops.schema import ORDER_HASH_SQL, SQL_RULES, order_hash
from sales_ops.settings import Settings

HASH_SPACE = 0x10000
# A bucket written by a fold or a rebuild holds at most this share of what its next merge may read
# besides the new rows, spread over the dates a reader reads at once: it grows by the changes of
# its date until the next fold and must still fit, and a reader of orders_latest reads a slice of
# every date the live deltas touch in one statement (the view looks their orders up there), about
# the window an order's lifecycle spans (READ_DATES, §2.5), so one slice of each must fit together.
BUCKET_SHARE = 0.5
READ_DATES = 24
# ... of that room less this share of the cutoff: a reader of orders_live (the dashboard's slices,
# sales_ops/dashboard/snapshot.py) also reads the raw tail whole in each statement (about 20
# minutes of raw plus what arrived since the last compaction: ~16 % of the cutoff at 1,000
# changes/s in the cost model).
TAIL_SHARE = 0.25
Layout = dict[tuple[str, str], dict[str | None, int]]  # (order_date, version) → bucket → bytes
# Parquet bytes a reader of orders_latest reads a row, to judge from the state's row counts whether
# it needs slices (about 60 measured for a whole row; more, to slice early rather than late).
READ_ROW_BYTES = 100
T = TypeVar("T")


def bucket_ranges(count: int) -> list[str]:
    """The `count` buckets (a power of two) of the hash space: `0000-7FFF`, `8000-FFFF` for 2."""
    if count < 1 or count > HASH_SPACE or count & (count - 1):
        raise ValueError(f"a bucket count is a power of two from 1 to {HASH_SPACE}, not {count}")
    width = HASH_SPACE // count
    return [f"{i * width:04X}-{(i + 1) * width - 1:04X}" for i in range(count)]


def split_range(bucket: str, parts: int) -> list[str]:
    """A bucket cut into `parts` (a power of two) equal buckets."""
    first, last = (int(x, 16) for x in bucket.split("-"))
    width = (last - first + 1) // parts
    if width < 1 or (last - first + 1) % parts:
        raise ValueError(f"bucket {bucket} cannot be cut into {parts}")
    return [f"{first + i * width:04X}-{first + (i + 1) * width - 1:04X}" for i in range(parts)]


def bucket_count(bucket: str) -> int:
    """How many buckets of this one's width the hash space holds."""
    first, last = (int(x, 16) for x in bucket.split("-"))
    return HASH_SPACE // (last - first + 1)


def in_bucket(bucket: str) -> Sql:
    """WHERE fragment: the orders whose order_hash falls in the bucket."""
    first, last = bucket.split("-")
    return Sql(f"({ORDER_HASH_SQL} BETWEEN {literal(first)} AND {literal(last)})")


def overlaps(bucket: str, other: str) -> bool:
    """Whether two buckets share a hash (fixed-width hex: they compare as strings)."""
    return bucket[:4] <= other[5:] and other[:4] <= bucket[5:]


def slices(layouts: dict[date, dict[str, int]], budget: int) -> list[str]:
    """Ranges of the hash space, all of one width, the fewest such that reading every date's buckets
    that overlap one range (`layouts`: date → bucket → bytes) stays within `budget`: how a reader
    goes through dates too big to read at once, a slice of their orders at a time. No finer than
    the finest bucket: a slice reads every bucket it overlaps whole, so finer ones read no less."""
    finest = max((bucket_count(b) for bs in layouts.values() for b in bs), default=1)
    count = 1
    while True:
        ranges = bucket_ranges(count)
        worst = max(
            (sum(n for bs in layouts.values() for b, n in bs.items() if overlaps(b, q)) for q in ranges),
            default=0,
        )
        if worst <= budget or count >= finest:
            return ranges
        count *= 2


def packs(sizes: dict[date, dict[str, int]], budget: int) -> list[dict[date, list[str]]]:
    """The dates' buckets (`sizes`: date → bucket → bytes) in groups of at most `budget` bytes,
    each bucket in one group (a bucket bigger than the budget alone)."""
    out: list[dict[date, list[str]]] = []
    group: dict[date, list[str]] = {}
    total = 0
    for d in sorted(sizes):
        for bucket, n in sorted(sizes[d].items()):
            if group and total + n > budget:
                out.append(group)
                group, total = {}, 0
            group.setdefault(d, []).append(bucket)
            total += n
    return [*out, group] if group else out


def known_versions(versions: dict[date, str], buckets: dict[date, list[str]] | None = None) -> Sql:
    """WHERE fragment on orders_latest_versions: exactly these dates' versions, live rows and
    tombstones (with `buckets`, only those buckets of each date). The IN lists let Athena prune
    partitions by each key; the pairs keep a date from matching another date's version."""
    if not versions:
        return Sql("FALSE")
    pairs = sorted((d, v + suffix) for d, v in versions.items() for suffix in ("", DELETED))
    dates = literal(sorted(versions), top=True)
    names = literal(sorted({v for _, v in pairs}), top=True)
    if buckets is None:
        each = " OR ".join(f"(order_date = {literal(d)} AND v = {literal(v)})" for d, v in pairs)
        return Sql(f"order_date IN ({dates}) AND v IN ({names}) AND ({each})")
    listed = literal(sorted({b for d in versions for b in buckets.get(d, [])}), top=True)
    each = " OR ".join(
        f"(order_date = {literal(d)} AND v = {literal(v)} AND bucket IN ({of_date}))"
        for d, v in pairs
        for of_date in [literal(sorted(buckets.get(d, [])), top=True)]
    )
    return Sql(f"order_date IN ({dates}) AND v IN ({names}) AND bucket IN ({listed}) AND ({each})")


def of_version(layout: Layout, day: date, version: str | None) -> dict[str, int]:
    """A version's buckets of a date → their bytes (none for no version, or one from before buckets)."""
    if version is None:
        return {}
    return {b: n for b, n in layout.get((day.isoformat(), version), {}).items() if b}


@dataclass
class Batch:
    """One statement of a fold or a rebuild: the dates it rewrites, all read from one bucket of
    their version (`read`), each written to the buckets listed for it (`read` itself, or its halves,
    quarters… when the date has grown past what one bucket should hold)."""

    read: str
    written: dict[date, list[str]]

    @property
    def dates(self) -> list[date]:
        return list(self.written)

    def bucket_of(self) -> Sql:
        """The written bucket of each row (by its order_date and order_hash)."""
        splits = [
            (d, bucket) for d, buckets in self.written.items() if buckets != [self.read] for bucket in buckets
        ]
        if not splits:
            return Sql(literal(self.read))
        cases = " ".join(
            f"WHEN final_order_date = {literal(d)} AND {in_bucket(b)} THEN {literal(b)}" for d, b in splits
        )
        return Sql(f"CASE {cases} ELSE {literal(self.read)} END")


def batches(
    dates: list[date],
    latest: dict[date, str],
    layout: Layout,
    room: int,
    growth: Callable[[date, int], int],
    dates_per_write: int,
    reserve: int = 0,
) -> list[Batch]:
    """The dates' buckets in statements that stay under `room` (the cutoff less the new rows they
    merge): each date's version (`latest`) is read a bucket at a time; a date whose buckets would
    outgrow BUCKET_SHARE of the room less `reserve` (the raw tail's share, TAIL_SHARE) over the
    dates read together (as many as are rewritten here, at most READ_DATES; its bytes plus
    `growth`) is written in halves, quarters… of its buckets. Statements group the dates read
    from the same bucket, at most `dates_per_write` and 100 written partitions each (Athena's
    INSERT limit)."""
    target = BUCKET_SHARE * max(room - reserve, 1) / max(1, min(len(dates), READ_DATES))
    units: dict[str, list[tuple[date, int, list[str]]]] = {}
    for d in dates:
        buckets = of_version(layout, d, latest.get(d))
        count = max((bucket_count(b) for b in buckets), default=1)
        total = sum(buckets.values()) + growth(d, sum(buckets.values()))
        parts = 1
        while total > target * count * parts and count * parts * 2 <= HASH_SPACE:
            parts *= 2
        for read in bucket_ranges(count):
            units.setdefault(read, []).append((d, buckets.get(read, 0), split_range(read, parts)))
    out: list[Batch] = []
    for read, group in sorted(units.items()):
        batch, size = Batch(read, {}), 0
        for d, n, written in group:
            partitions = 2 * sum(len(w) for w in [*batch.written.values(), written])  # rows, tombstones
            full = len(batch.written) >= dates_per_write or size + n > room
            if batch.written and (full or partitions > MAX_PARTITIONS_PER_WRITE):
                out.append(batch)
                batch, size = Batch(read, {}), 0
            batch.written[d] = written
            size += n
        out.append(batch)
    return out


Run = Callable[..., Any]  # one statement of the pipeline's SQL, counted (Compaction.named)


def count_orphans(named: Run, deltas: Sql, touched: dict[date, str], layout: Layout, budget: int) -> int:
    """The deltas' orders that may have a base row outside the dates they touch (`touched`: their
    current versions): only then does a fold look for their rows in every date
    (compact_orphans.sql). In slices of the orders, so that each statement stays within `budget`
    however big the touched dates are."""
    buckets = {d: of_version(layout, d, v) for d, v in touched.items()}
    found = 0
    for part in slices(buckets, budget):
        covering = {d: [b for b in bs if overlaps(b, part)] for d, bs in buckets.items()}
        current_rows = known_versions(touched, covering)
        result = named("compact_orphans", deltas=deltas, in_bucket=in_bucket(part), current_rows=current_rows)
        found += int(result.rows[0][0])
    return found


def count_rows(
    named: Run, rewritten: dict[date, str], layout: Layout, budget: int
) -> tuple[dict[date, int], int]:
    """Live rows of each date's new version (compact_rows.sql, in groups of buckets within
    `budget`: the local engine reads small files whole), and the versions' bytes."""
    sizes = {d: of_version(layout, d, v) for d, v in rewritten.items()}
    counted: dict[date, int] = {}
    for group in packs(sizes, budget):
        versions = known_versions({d: rewritten[d] for d in group}, group)
        for d, v, n in named("compact_rows", versions=versions).rows:
            if rewritten.get(as_date(d)) == v:
                counted[as_date(d)] = counted.get(as_date(d), 0) + int(n)
    return counted, sum(n for buckets in sizes.values() for n in buckets.values())


def as_date(value: Any) -> date:
    """A date from what an engine returns for one (a date, a timestamp or its text)."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class Slice:
    """One range of order_hash (`part`) of some order_dates, read from pinned versions: each date's
    current version (`versions`) and its buckets that overlap the range (`buckets`)."""

    part: str
    versions: dict[date, str]
    buckets: dict[date, list[str]]

    def rows(self) -> Sql:
        """WHERE fragment: the slice's orders (a hash filter: whole orders, so exact)."""
        return in_bucket(self.part)

    def holds(self, order_id: str) -> bool:
        """Whether the order is one of the slice's (`rows`, in Python)."""
        return self.part[:4] <= order_hash(order_id) <= self.part[5:]

    def base(self, database: str, deleted: bool) -> Sql:
        """orders_base (or orders_tombstones) of the slice: its buckets of the pinned versions."""
        kind = "LIKE" if deleted else "NOT LIKE"
        return Sql(
            f"(SELECT {SQL_RULES['latest_columns']}, order_date FROM {database}.{VERSIONS_TABLE} "
            f"WHERE {known_versions(self.versions, self.buckets)} AND v {kind} '%{DELETED}' "
            f"AND {in_bucket(self.part)})"
        )


def reading_slices(
    settings: Settings, state: CompactionState, dates: list[date], reserve: int = 0
) -> list[Slice | None]:
    """How a reader of these order_dates through orders_latest (which also looks up the live
    deltas' orders in their dates) stays under the cutoff: [None], one statement over the view as
    it is, while the base it reads (estimated from the rows the state keeps per date, at
    READ_ROW_BYTES a row) fits half of the cutoff less the live deltas and `reserve` (what each
    statement reads besides, e.g. orders_live's raw tail); else slices of the orders, each reading
    the buckets of the dates' current versions that overlap it, as much again."""
    days = sorted({*dates, *state.delta_dates()})
    deltas = sum(state.delta_bytes.get(d, 0) for d in state.deltas)
    budget = settings.scan_cutoff_bytes - deltas - reserve
    estimate = sum(state.base_rows.get(d.isoformat(), 0) for d in days) * READ_ROW_BYTES
    if estimate <= budget * BUCKET_SHARE:  # no catalog call: the common case costs nothing more
        return [None]
    current = current_versions(settings)
    wanted = {d: current[d] for d in days if d in current}
    sizes = {d: _listed(settings, d, v) for d, v in wanted.items()}
    return [
        Slice(part, wanted, {d: [b for b in bs if overlaps(b, part)] for d, bs in sizes.items()})
        # half the room: the view reads a slice's base twice (its rows, and the order_ids the
        # deltas' orders are looked up in)
        for part in slices(sizes, max(int(budget * BUCKET_SHARE), 1))
    ]


def _listed(settings: Settings, day: date, version: str) -> dict[str, int]:
    """A version's buckets of a date → their bytes (live rows and tombstones), from S3."""
    folder = f"{LATEST_PREFIX}order_date={day.isoformat()}/v={version}"  # and its -deleted twin
    return of_version(version_layout(settings, folder), day, version)


def pinned(
    settings: Settings,
    read: Callable[[Slice | None, CompactionState], T],
    dates: list[date],
    tries: int = 3,
    reserve: int = 0,
) -> list[T]:
    """`read` for each slice of these dates (reading_slices), given the compaction state it was
    cut from. Slices are statements apart: a fold in between would drop deltas the later ones no
    longer see, so the slices are read again (at most `tries` times) until the live deltas are the
    same after as before: one moment."""
    for _ in range(tries):
        state = CompactionState.load(settings)
        parts = reading_slices(settings, state, dates, reserve)
        out = [read(part, state) for part in parts]
        if len(parts) == 1 or CompactionState.load(settings).deltas == state.deltas:
            return out
    raise RuntimeError(f"orders_latest kept changing under a read in slices ({tries} tries)")
