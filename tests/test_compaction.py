"""Compaction into orders_latest (docs/design.md §2.5) on the emulator, with real handler output.

Each test gets its own bucket, Glue database and state dir on the session's emulator, and a
synthetic history of orders over three days (sales_ops.load.synthetic: the mock shop's lifecycles as
DynamoDB stream records through the real Lambda handler, delivered as Firehose names them). The
truth is the state the stream leaves in the table, kept by the generator in plain Python.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sales_ops.catalog import glue
from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.catalog.glue import list_partitions
from sales_ops.curated.compaction import Compaction, compact
from sales_ops.curated.lock import LOCK_KEY, CompactionLocked, S3Lock
from sales_ops.curated.planning import merged_before, passes
from sales_ops.curated.rollups import build_rollup
from sales_ops.curated.state import STATE_KEY, RawObject
from sales_ops.curated.tables import (
    BASE_TABLE,
    BUCKETED,
    COLUMNS,
    DELTA_PREFIX,
    LATEST_PREFIX,
    VERSION_DIR,
    VERSIONS_TABLE,
    WHOLE,
    current_versions,
    list_sizes,
    live_deltas,
    version_layout,
)
from sales_ops.dashboard.metrics import collect_metrics
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
from sales_ops.quality import check_unique_order_id
from sales_ops.quality.reconciliation import lake_rows
from sales_ops.query import DuckDBEngine, QueryError, ScanCutoffError
from sales_ops.raw_objects import decode_body
from sales_ops.schema import ORDER_VALUE_FIELDS, order_hash
from sales_ops.settings import CURATED_PREFIX, RAW_PREFIX, Settings

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
CHANGES = plan_changes(400, END - timedelta(days=3), END, seed=7, keys_only_deletes=0.5)
FIELDS = ORDER_VALUE_FIELDS


@pytest.fixture()
def engine(space: Settings) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(space) as eng:
        yield eng


def deliver(settings: Settings, stream: ChangeStream, changes: list) -> list[tuple[str, bytes]]:
    lines = list(raw_lines(changes, stream))
    write_lines(settings, lines)
    LocalCrawler(settings).run()
    return lines


def table(engine: DuckDBEngine, settings: Settings) -> dict[str, dict]:
    rows = engine.query(f"SELECT * FROM {settings.database}.orders_latest").as_dicts()
    return {row["order_id"]: row for row in rows}


def assert_matches(rows: dict[str, dict], truth: dict[str, dict]) -> None:
    assert sorted(rows) == sorted(truth), "orders_latest holds other orders than the table"
    for order_id, want in truth.items():
        got = rows[order_id]
        assert {f: got[f] for f in FIELDS} == {f: want[f] for f in FIELDS}, order_id
        assert got["order_date"].isoformat() == want["created_at"][:10]


def parts(fractions: tuple[float, ...], changes: list = CHANGES) -> list[list]:
    cuts = [round(len(changes) * f) for f in fractions]
    edges = [0, *cuts, len(changes)]
    return [changes[a:b] for a, b in itertools.pairwise(edges)]


def keys(settings: Settings, prefix: str) -> dict[str, int]:
    s3 = settings.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix):
        out |= {o["Key"]: o["Size"] for o in page.get("Contents", [])}
    return out


def dates_of(lines: list[tuple[str, bytes]], created: dict[str, str]) -> set[str]:
    """order_date partitions these raw lines touch (Keys-only REMOVEs via the order's first line)."""
    out = set()
    for _, line in lines:
        event = json.loads(line)
        out.add((event["created_at"] or created[event["order_id"]])[:10])
    return out


def test_incremental_runs_give_the_table_state_and_equal_a_full_rebuild(
    space: Settings, engine: DuckDBEngine
) -> None:
    stream = ChangeStream(seed=7)
    created: dict[str, str] = {}
    reports = []
    for part in parts((0.7, 0.99)):
        lines = deliver(space, stream, part)
        for _, line in lines:
            event = json.loads(line)
            created.setdefault(event["order_id"], event["created_at"])
        before = current_versions(space)
        reports.append(compact(space, engine))
        assert_matches(table(engine, space), stream.live_orders())

    # The last run wrote a delta only (its orders' latest changes), no base partition; a fold then
    # rewrote exactly the dates its events touch, and the others kept their version.
    last = reports[-1]
    touched = dates_of(lines, created)
    assert last.deltas_written and last.partitions_rewritten == [] and last.delta_rows > 0
    assert sorted(last.dates_changed) == sorted(touched)
    assert current_versions(space) == before
    folded = compact(space, engine, fold_fraction=0)
    assert folded.folded == last.deltas_written and folded.new_objects == 0
    assert sorted(folded.partitions_rewritten) == sorted(f"order_date={d}" for d in touched)
    assert live_deltas(space) == []
    assert_matches(table(engine, space), stream.live_orders())
    after = current_versions(space)
    untouched = {d for d in before if d.isoformat() not in touched}
    assert untouched, "the history should leave some dates untouched by the last part"
    assert all(after[d] == before[d] for d in untouched)

    incremental = table(engine, space)
    full = compact(space, engine, full=True)
    assert table(engine, space) == incremental
    assert last.bytes_read < full.bytes_read / 3


def test_a_keys_only_remove_finds_the_order_partition(space: Settings, engine: DuckDBEngine) -> None:
    """A REMOVE without OldImage has no created_at: the order's partition is looked up."""
    stream = ChangeStream(seed=7)
    lines = list(raw_lines(CHANGES, stream))
    orphans = [(p, x) for p, x in lines if json.loads(x)["created_at"] is None]
    assert orphans
    write_lines(space, [(p, x) for p, x in lines if json.loads(x)["created_at"] is not None])
    LocalCrawler(space).run()
    compact(space, engine)
    gone = {json.loads(x)["order_id"] for _, x in orphans}
    dates = {row["order_date"].isoformat() for oid, row in table(engine, space).items() if oid in gone}
    assert dates

    write_lines(space, orphans)  # days late: beyond the default lookback, hence the longer one
    report = compact(space, engine, lookback_hours=24 * 30, fold_fraction=0)  # a delta, then a fold
    assert report.deltas_written and report.dates_changed == []  # no created_at in a Keys-only REMOVE
    assert sorted(report.partitions_rewritten) == sorted(f"order_date={d}" for d in dates)
    assert not gone & set(table(engine, space))
    assert_matches(table(engine, space), stream.live_orders())


def test_a_second_run_changes_nothing_and_full_rebuilds_write_the_same_content(
    space: Settings, engine: DuckDBEngine
) -> None:
    deliver(space, ChangeStream(seed=7), CHANGES)
    compact(space, engine)
    locations = current_versions(space)
    files = keys(space, LATEST_PREFIX)
    again = compact(space, engine)
    assert again.partitions_rewritten == [] and again.rows == 0 and again.bytes_read == 0
    assert current_versions(space) == locations
    assert keys(space, LATEST_PREFIX) == files

    first = compact(space, engine, full=True)
    contents = _partition_rows(engine, space, first.version)
    second = compact(space, engine, full=True)
    assert second.version != first.version
    assert _partition_rows(engine, space, second.version) == contents


def _partition_rows(engine: DuckDBEngine, settings: Settings, version: str) -> dict:
    result = engine.query(
        f"SELECT order_date, v, order_id, status, order_total, last_sequence_number "
        f"FROM {settings.database}.{VERSIONS_TABLE} WHERE v LIKE '{version}%' ORDER BY order_id"
    )
    out: dict = {}
    for row in result.as_dicts():
        kind = "deleted" if row.pop("v").endswith("-deleted") else "live"
        out.setdefault((row.pop("order_date"), kind), []).append(row)
    return out


def test_duplicated_and_reordered_events_change_nothing(space: Settings, engine: DuckDBEngine) -> None:
    stream = ChangeStream(seed=7)
    lines = deliver(space, stream, CHANGES)
    compact(space, engine)
    expected = table(engine, space)

    # Every raw object again under a new key, its lines reversed (at-least-once delivery, reordered).
    # Eight at a time, as write_lines delivers: one per raw hour, each a GET and a PUT.
    s3 = space.client("s3", max_pool_connections=16)

    def replay(key: str) -> None:
        body = decode_body(s3.get_object(Bucket=space.bucket, Key=key)["Body"].read())
        reordered = b"".join(reversed(body.splitlines(keepends=True)))
        s3.put_object(
            Bucket=space.bucket,
            Key=f"{key.rsplit('/', 1)[0]}/orders-raw-1-replay-{uuid.uuid4()}",
            Body=reordered,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(replay, keys(space, RAW_PREFIX)))
    # And older events of deleted orders, delivered late: they must not bring those orders back.
    deleted = {json.loads(x)["order_id"] for _, x in lines if json.loads(x)["is_deleted"]}
    stale = [
        (p, x) for p, x in lines if json.loads(x)["order_id"] in deleted and not json.loads(x)["is_deleted"]
    ]
    assert stale
    write_lines(space, stale)
    LocalCrawler(space).run()

    report = compact(space, engine)
    assert report.new_objects > 0 and report.deltas_written
    assert table(engine, space) == expected
    compact(space, engine, fold_fraction=0)  # folded into the base: the same
    assert table(engine, space) == expected
    assert_matches(expected, stream.live_orders())


def _hold_back(lines: list[tuple[str, bytes]], newer_than: datetime) -> int:
    """Index of the last change of an order whose history ended after `newer_than` (a MODIFY)."""
    last_of: dict[str, int] = {}
    for i, (_, line) in enumerate(lines):
        last_of[json.loads(line)["order_id"]] = i
    for i in sorted(last_of.values()):
        event = json.loads(lines[i][1])
        if event["event_type"] == "MODIFY" and event["event_time"] > newer_than.isoformat()[:19]:
            return i
    raise AssertionError("no candidate change to hold back")


def test_a_late_object_in_a_compacted_hour_is_picked_up(space: Settings, engine: DuckDBEngine) -> None:
    stream = ChangeStream(seed=7)
    lines = list(raw_lines(CHANGES, stream))
    held = _hold_back(lines, END - timedelta(hours=40))  # delivered a day or more late
    partition, line = lines[held]
    write_lines(space, lines[:held] + lines[held + 1 :])
    LocalCrawler(space).run()
    compact(space, engine)
    event = json.loads(line)
    stored = table(engine, space)[event["order_id"]]["last_sequence_number"]
    assert len(stored) == 40 and int(stored) < int(event["sequence_number"])  # zero-padded digits

    write_lines(space, [(partition, line)])  # lands in an hour compacted long ago
    report = compact(space, engine)
    assert report.new_objects == 1
    assert report.dates_changed == [event["created_at"][:10]]
    assert_matches(table(engine, space), stream.live_orders())


def test_an_object_later_than_the_lookback_needs_a_full_rebuild(
    space: Settings, engine: DuckDBEngine
) -> None:
    stream = ChangeStream(seed=7)
    lines = list(raw_lines(CHANGES, stream))
    held = _hold_back(lines, END - timedelta(days=4))
    partition, line = lines[held]
    write_lines(space, lines[:held] + lines[held + 1 :])
    LocalCrawler(space).run()
    compact(space, engine, lookback_hours=12)
    write_lines(space, [(partition, line)])  # older than the newest partition minus 12 h
    assert compact(space, engine, lookback_hours=12).new_objects == 0
    assert compact(space, engine, full=True).partitions_rewritten
    assert_matches(table(engine, space), stream.live_orders())


def test_a_crash_between_write_and_swap_leaves_the_table_readable_and_is_repaired(
    space: Settings, engine: DuckDBEngine
) -> None:
    stream = ChangeStream(seed=7)
    first, second = parts((0.8,))
    deliver(space, stream, first)
    compact(space, engine)
    before = table(engine, space)
    versions = current_versions(space)
    files = keys(space, LATEST_PREFIX)
    deliver(space, stream, second)

    # A cycle writes its delta; a fold that dies after writing the base's new versions, before
    # swapping any partition: readers see the same answer all along.
    cycle = Compaction(space, engine, fold_fraction=0, progress=crash_at("swapping"))
    plan = cycle.plan()
    assert plan is not None
    cycle.write_deltas(plan)
    assert live_deltas(space) and table(engine, space) != before
    assert_matches(table(engine, space), stream.live_orders())
    with pytest.raises(Crash):
        cycle.run()  # nothing new: the fold, which dies before its swap
    orphans = [k for k in keys(space, LATEST_PREFIX) if k not in files]
    assert orphans and current_versions(space) == versions
    assert_matches(table(engine, space), stream.live_orders())

    # A crash after swapping but before the deltas are dropped: the same answer again.
    deltas = live_deltas(space)
    with pytest.raises(Crash):
        Compaction(space, engine, fold_fraction=0, progress=crash_at("dropping")).run()
    assert live_deltas(space) == deltas and current_versions(space) != versions
    assert_matches(table(engine, space), stream.live_orders())

    report = compact(space, engine, retention_hours=0, fold_fraction=0)
    assert report.folded == [f"delta={d}" for d in deltas]
    assert_matches(table(engine, space), stream.live_orders())
    assert report.versions_removed >= 1
    assert not [k for k in keys(space, LATEST_PREFIX) if k in orphans]
    assert live_deltas(space) == [] and not keys(space, DELTA_PREFIX)


def test_two_compactions_never_interleave(space: Settings, engine: DuckDBEngine) -> None:
    # A holder that died keeps the lock only until its lease runs out.
    # (5 s, not less: on a loaded machine the next acquire can come later than a shorter lease.)
    dead = S3Lock(space, LOCK_KEY, lease_s=5)
    dead.acquire()
    with pytest.raises(CompactionLocked):
        compact(space, engine, full=True)
    # The lease runs while the data arrives (any data will do: the lock is under test, not the
    # merge; the first ~half-day of the history, a dozen hourly objects).
    deliver(space, ChangeStream(seed=7), CHANGES[:150])
    time.sleep(max(0.0, 5.1 - (time.monotonic() - dead.renewed_at)))
    assert compact(space, engine, full=True).partitions_rewritten

    # A live holder keeps it; once it lets go, the next run goes ahead.
    other = S3Lock(space, LOCK_KEY, lease_s=300)
    with other.held(), pytest.raises(CompactionLocked, match=other.owner):
        compact(space, engine, full=True)
    assert compact(space, engine, full=True).partitions_rewritten
    assert LOCK_KEY not in keys(space, LOCK_KEY)
    assert STATE_KEY in keys(space, STATE_KEY)  # the watermark lives in S3, not on local disk


def test_old_versions_are_removed_after_the_retention(space: Settings, engine: DuckDBEngine) -> None:
    stream = ChangeStream(seed=7)
    first, second = parts((0.6,))
    deliver(space, stream, first)
    compact(space, engine)
    deliver(space, stream, second)
    kept = compact(space, engine, retention_hours=24, fold_fraction=0)
    assert kept.versions_removed == 0
    versions = {k.split("/v=")[1].split("/")[0].removesuffix("-deleted") for k in keys(space, LATEST_PREFIX)}
    assert len(versions) == 2
    rows = table(engine, space)

    cleaned = compact(space, engine, retention_hours=0)  # nothing new: only the clean-up runs
    assert cleaned.partitions_rewritten == [] and cleaned.versions_removed > 0
    left = {k.split("/v=")[1].split("/")[0].removesuffix("-deleted") for k in keys(space, LATEST_PREFIX)}
    assert left == set(current_versions(space).values())
    staged = {p["Values"][1].removesuffix("-deleted") for p in list_partitions(space, VERSIONS_TABLE)}
    assert staged <= left
    assert table(engine, space) == rows


def test_batches_of_dates_give_the_same_table(space: Settings, engine: DuckDBEngine) -> None:
    stream = ChangeStream(seed=7)
    deliver(space, stream, CHANGES)
    report = compact(space, engine, dates_per_write=2)
    assert len(report.partitions_rewritten) > 2
    assert_matches(table(engine, space), stream.live_orders())


# --- passes under the scan cutoff (defect 8 of issue 16) ----------------------------------------


def raw_object(dt: str, hour: str, name: str, size: int) -> RawObject:
    return RawObject(f"{RAW_PREFIX}dt={dt}/hour={hour}/{name}", "etag", dt, hour, size)


def test_passes_keep_each_scan_under_the_budget_and_take_every_object_once() -> None:
    small = [raw_object("2026-01-01", f"{h:02d}", "a", 30) for h in range(10)]  # 10 partitions of 30 B
    big = [raw_object("2026-01-02", "00", f"b{i}", 40) for i in range(7)]  # one partition of 280 B
    objects = small + big
    sizes = {o.partition: 0 for o in objects}
    for o in objects:
        sizes[o.partition] += o.size
    groups = passes(list(reversed(objects)), sizes, budget=100, max_paths=3)
    assert [o for g in groups for o in g] == sorted(objects, key=lambda o: o.key)  # once, in key order
    assert all(sum(o.size for o in g) <= 100 for g in groups)
    whole = groups[:4]  # whole partitions while they fit (3 + 3 + 3 + 1)
    assert [len({o.partition for o in g}) for g in whole] == [3, 3, 3, 1]
    split = groups[4:]  # the partition past the budget, by objects: ≤ 100 B and ≤ 3 paths a pass
    assert [len(g) for g in split] == [2, 2, 2, 1]
    # Bytes already merged in a partition count too (a partition selector re-reads them).
    assert len(passes(small[:2], {small[0].partition: 90, small[1].partition: 30}, budget=100)) == 2
    assert passes([], {}, budget=100) == []
    assert passes(small, sizes, budget=10**6, max_partitions=4) == [small[:4], small[4:8], small[8:]]


class Crash(Exception):
    """Stands for the process dying at that point (the lock is released; a real crash leaves the
    lease to expire, tests/test_lock.py)."""


def crash_at(prefix: str) -> Callable[[str], None]:
    def progress(message: str) -> None:
        if message.startswith(prefix):
            raise Crash(message)

    return progress


def test_resuming_skips_only_what_the_interrupted_passes_listed_and_merged() -> None:
    checkpoint = {"through": f"{RAW_PREFIX}dt=2026-01-01/hour=05/b", "listed_at": 1_000_000.0}

    def obj(hour: str, name: str, modified: float) -> RawObject:
        key = f"{RAW_PREFIX}dt=2026-01-01/hour={hour}/{name}"
        return RawObject(key, "e", "2026-01-01", hour, 1, modified)

    assert merged_before(obj("05", "b", 999_000.0), checkpoint, 300)  # the last pass's greatest key
    assert merged_before(obj("01", "a", 999_000.0), checkpoint, 300)
    assert not merged_before(obj("05", "c", 999_000.0), checkpoint, 300)  # past it: not merged yet
    assert not merged_before(obj("01", "a", 999_800.0), checkpoint, 300)  # late: maybe not listed
    assert not merged_before(obj("01", "a", 999_000.0), {}, 300)  # no checkpoint: nothing skipped


def test_a_lake_past_the_scan_cutoff_is_compacted_in_passes(space: Settings, engine: DuckDBEngine) -> None:
    """With raw/ three times the per-query cutoff, the one-statement raw query is cancelled (as on
    Athena), while a first run, a backlog and a full rebuild each go in passes under the cutoff
    and give the same table as one pass without a cutoff."""
    stream = ChangeStream(seed=7)
    # Fewer orders than CHANGES: the passes are sized from the data, so their number is the same.
    # (Each pass costs its statements whatever its size: the first run, the backlog and the rebuild
    # take 4, 7 and 10 passes here, each bound below passed by one. The history's hours are whole,
    # so these numbers do not depend on the time of day.)
    changes = plan_changes(120, END - timedelta(days=3), END, seed=7, keys_only_deletes=0.5)
    first, rest = (list(raw_lines(p, stream)) for p in parts((0.35,), changes))
    assert any(json.loads(x)["created_at"] is None for _, x in rest)  # Keys-only REMOVEs across passes
    # The cutoff is set from the lines' own size, so raw/ is written uncompressed here (a scan
    # counts stored bytes, about a tenth of these with GZIP, the default).
    capped = replace(
        space, scan_cutoff_bytes=sum(len(x) for _, x in first + rest) // 3, raw_compression="UNCOMPRESSED"
    )
    with DuckDBEngine(capped) as small:
        write_lines(capped, first)
        LocalCrawler(capped).run()
        with pytest.raises(ScanCutoffError):
            small.named("total_sales_by_product_raw")
        first_run = compact(capped, small)  # 1.05 cutoffs of raw/, a pass at most a third of one
        assert first_run.passes >= 3 and first_run.bytes_read > capped.scan_cutoff_bytes

        write_lines(capped, rest)  # a backlog of 1.95 cutoffs
        LocalCrawler(capped).run()
        backlog = compact(capped, small)
        assert backlog.passes >= 6
        assert_matches(table(small, capped), stream.live_orders())

        said: list[str] = []
        rebuilt = compact(capped, small, full=True, progress=said.append)
        assert rebuilt.passes >= 8
        assert said[0].startswith(f"pass 1/{rebuilt.passes}: ") and len(said) == rebuilt.passes
        assert_matches(table(small, capped), stream.live_orders())
        windowed = table(small, capped)

        # A rebuild that dies in its fourth pass: nothing is swapped, readers keep the table; the
        # next run (even an incremental one) finishes the rebuild from the fourth pass on.
        versions = current_versions(capped)
        with pytest.raises(Crash):
            compact(capped, small, full=True, progress=crash_at("pass 4/"))
        assert current_versions(capped) == versions and table(small, capped) == windowed
        resumed: list[str] = []
        # No listing margin: every object here is minutes old, and the default (300 s) would merge
        # them all again (harmless, but then nothing would show what the checkpoint saves).
        finished = Compaction(capped, small, progress=resumed.append, listing_margin_s=0).run()
        assert resumed[0].startswith("resuming the run of version ") and resumed[0].endswith("after pass 3")
        assert resumed[1].startswith("pass 1/") and finished.full
        assert finished.passes == rebuilt.passes and finished.new_objects == rebuilt.new_objects
        assert finished.bytes_read < rebuilt.bytes_read * 0.9  # the first three passes are not read again
        assert table(small, capped) == windowed
        assert compact(capped, small).partitions_rewritten == []  # nothing pending, nothing new

    one = compact(space, engine, full=True)
    assert one.passes == 1
    assert table(engine, space) == windowed


def test_a_date_bigger_than_a_statement_may_read_is_folded_a_bucket_at_a_time(
    space: Settings, engine: DuckDBEngine
) -> None:
    """At 1,000 changes/s one date of the base passes Athena's per-query cutoff by itself. Here
    the cutoff is set below what one date grows to: each fold writes a date that grows past what
    its buckets should hold in halves, quarters… of its buckets (ranges of md5(order_id)), so
    every statement of every cycle and fold stays under the cutoff (the engine cancels any
    that does not, as Athena does), though reading that date at once is cancelled. Each bucket
    holds the orders its range names, and the table is the stream's state."""
    stream = ChangeStream(seed=11)
    day = (END - timedelta(days=1)).replace(hour=8)  # one date's 3,000 orders
    changes = plan_changes(3000, day, day + timedelta(hours=10), seed=11)
    capped = replace(space, scan_cutoff_bytes=100_000)
    with DuckDBEngine(capped) as small:
        deliver(space, stream, changes)
        compact(capped, small)  # a backlog of several passes, folded between them
        assert_matches(table(engine, space), stream.live_orders())

        current = current_versions(space)
        layout = version_layout(space)
        sizes = {d: layout[(d.isoformat(), v)] for d, v in current.items()}
        big = max(sizes, key=lambda d: sum(sizes[d].values()))
        assert len(sizes[big]) >= 4
        whole_date = f"SELECT * FROM {space.database}.orders_base WHERE order_date = DATE '{big}'"
        assert engine.query(whole_date).bytes_scanned > capped.scan_cutoff_bytes
        with pytest.raises(ScanCutoffError):  # the date at once: more than a statement may read
            small.query(whole_date)
        rows = engine.query(
            f"SELECT order_id, bucket FROM {space.database}.{VERSIONS_TABLE} WHERE v = '{current[big]}' "
            f"AND order_date = DATE '{big}'"
        ).rows
        assert {b for _, b in rows} == set(sizes[big])
        assert all(b[:4] <= order_hash(order_id) <= b[5:] for order_id, b in rows)

        # Readers of such dates go a slice of the orders at a time, under the cutoff, and answer as
        # one statement without a cutoff does: the per-cycle uniqueness check, the reconciliation's
        # lookups by key.
        sliced, whole = check_unique_order_id(small), check_unique_order_id(engine)
        assert sliced.passed and sliced.details["slices"] > 1 and whole.details["slices"] == 1
        assert sliced.details["rows"] == whole.details["rows"] > 0
        wanted = [order_id for order_id, _ in rows][::7]
        found, _ = lake_rows(capped, small, {big}, wanted)
        assert found == lake_rows(space, engine, {big}, wanted)[0] and set(found) == set(wanted)
        drawn, _ = lake_rows(capped, small, {big}, None, 50)
        assert len(drawn) == 50 and all(drawn[o] == found.get(o, drawn[o]) for o in drawn)

        # So do the by-date rollups: each slice's sums, then one statement adding them up.
        sliced_statements = [build_rollup(capped, small, name).statements for name in SLICED_ROLLUPS]
        assert all(glue.get_table(space, f"{name}__slices") is None for name in ROLLUP_TABLES)
        assert not list_sizes(space, f"{CURATED_PREFIX}_scratch/")
        sliced_rollups = {name: rollup_rows(engine, space, name) for name in ROLLUP_TABLES}

        # And the dashboard's live panels: its open dates a slice at a time (its customers then
        # counted by a sketch, so marked approximate), added up.
        sliced, whole = live_panels(capped, small), live_panels(space, engine)
        assert sliced.pop("approximate") and not whole.pop("approximate")
        assert sliced == whole and whole["headline"]["live_orders"] > 0

    incremental = table(engine, space)
    compact(space, engine, full=True)  # (a rebuild's lookups read the order_ids it wrote: uncapped)
    assert table(engine, space) == incremental
    # New versions everywhere: every date's rollups again, in one statement each (no cutoff).
    statements = [build_rollup(space, engine, name).statements for name in SLICED_ROLLUPS]
    assert all(a > b for a, b in zip(sliced_statements, statements, strict=True))  # slices, then the sum
    assert {name: rollup_rows(engine, space, name) for name in ROLLUP_TABLES} == sliced_rollups


# The by-date rollups, and the rollups built on them (sales_daily, customer_activity_daily).
SLICED_ROLLUPS = ("sales_by_product_hourly", "sales_totals", "customer_activity")
ROLLUP_TABLES = (*SLICED_ROLLUPS, "sales_daily", "customer_activity_daily")


def live_panels(settings: Settings, engine: DuckDBEngine) -> dict[str, object]:
    """The dashboard's panels about orders now, but the customers of the last hour (counted by a
    sketch when read in slices, which marks them approximate: the sketch's own test is in
    tests/test_engine.py)."""
    panels = collect_metrics(settings, engine)["panels"]
    out = {name: panels[name] for name in ("total", "top_products", "by_category", "by_channel", "by_region")}
    headline = dict(panels["headline"]["data"])
    approximate = headline.pop("customers_approximate")
    del headline["customers_last_hour"]
    return out | {"headline": headline, "approximate": approximate}


def rollup_rows(engine: DuckDBEngine, settings: Settings, name: str) -> list[tuple[object, ...]]:
    return sorted(engine.query(f"SELECT * FROM {settings.database}.{name}").rows, key=repr)


def _unmark_buckets(settings: Settings) -> None:
    base = glue.require_table(settings, BASE_TABLE)
    table_input = glue.table_update_input(base)
    table_input["Parameters"] = {k: v for k, v in base["Parameters"].items() if k != BUCKETED}
    glue.put_table(settings, table_input)


def test_a_lake_from_before_buckets_is_moved_into_them_once(space: Settings, engine: DuckDBEngine) -> None:
    """A lake whose versions hold their files in their own folder and whose
    orders_latest_versions has no bucket key (as before buckets): the next run copies each date's
    current version into one bucket of a new version and swaps it in (readers see the same table
    throughout), marks the base, and folds as usual; a date already moved is never moved again."""
    stream = ChangeStream(seed=7)
    first, rest = parts((0.6,))
    deliver(space, stream, first)
    compact(space, engine, fold_fraction=0)
    before = table(engine, space)
    s3 = space.client("s3")
    for key, _ in list_sizes(space, LATEST_PREFIX):  # each version's files up into its folder
        match = VERSION_DIR.search(key)
        if match and match["bucket"]:
            flat = key.replace(f"bucket={match['bucket']}/", "")
            s3.copy_object(Bucket=space.bucket, Key=flat, CopySource={"Bucket": space.bucket, "Key": key})
            s3.delete_object(Bucket=space.bucket, Key=key)
    glue.delete_table(space, VERSIONS_TABLE)
    old_keys = [("order_date", "date"), ("v", "string")]
    glue.put_table(
        space, glue.parquet_table_input(VERSIONS_TABLE, COLUMNS, space.s3_uri(LATEST_PREFIX), old_keys)
    )
    _unmark_buckets(space)
    old = current_versions(space)
    assert table(engine, space) == before

    deliver(space, stream, rest)
    assert compact(space, engine, fold_fraction=0).partitions_rewritten
    assert glue.require_table(space, BASE_TABLE)["Parameters"][BUCKETED] == "true"
    assert [k for k, _ in glue.partition_keys(glue.require_table(space, VERSIONS_TABLE))] == [
        "order_date",
        "v",
        "bucket",
    ]
    moved = current_versions(space)
    layout = version_layout(space)
    assert set(moved) >= set(old) and all(moved[d] != old[d] for d in old)
    assert all(list(layout[(d.isoformat(), v)]) == [WHOLE] for d, v in moved.items())
    assert_matches(table(engine, space), stream.live_orders())

    _unmark_buckets(space)  # as if a run had crashed before marking: nothing is moved twice
    compact(space, engine)
    assert current_versions(space) == moved and glue.require_table(space, BASE_TABLE)["Parameters"][BUCKETED]


def test_a_resumed_pass_never_reads_the_files_its_failed_attempt_left(space: Settings) -> None:
    """Issue 21, item 6. A rebuild dies after its first pass; the resumed second pass fails after
    writing (HIVE_TOO_MANY_OPEN_PARTITIONS: more dates and their tombstones in one INSERT than the
    limit, Athena's 100 made 4 here so that five days reach it; two dates a write stay within it)
    and, as Athena may, leaves its files behind; the next run resumes again. Each attempt writes
    under a fresh name, so every order is there once."""
    stream = ChangeStream(seed=7)
    # Five days: at least five order dates (four whole ones and the longer partial end), each
    # raw hour an object every statement of the passes reads.
    deliver(space, stream, plan_changes(60, END - timedelta(days=5), END, seed=7))
    sizes = keys(space, RAW_PREFIX)
    first_partition = min(k.rsplit("/", 1)[0] for k in sizes)
    budget = sum(size for k, size in sizes.items() if k.startswith(first_partition + "/"))
    with DuckDBEngine(space, leave_failed_writes=True, max_partitions_per_write=4) as engine:
        with pytest.raises(Crash):  # pass 1 is the first hour; the rest is the next pass
            compact(space, engine, full=True, window_bytes=budget, progress=crash_at("pass 2/"))
        first_pass = keys(space, LATEST_PREFIX)
        with pytest.raises(QueryError, match="HIVE_TOO_MANY_OPEN_PARTITIONS"):
            Compaction(space, engine, dates_per_write=500, listing_margin_s=0).run()
        left = set(keys(space, LATEST_PREFIX)) - set(first_pass)
        assert left, "the failed write left no file"
        report = Compaction(space, engine, dates_per_write=2, listing_margin_s=0).run()
        assert report.full and report.passes == 2
        rows = engine.query(f"SELECT order_id FROM {space.database}.orders_latest").rows
        assert len(rows) == len({r[0] for r in rows})  # each order once
        assert_matches(table(engine, space), stream.live_orders())
