"""The curated layer's cycle (docs/design.md §2.5, §2.7, §2.8): what it rejects, orders whose
created_at moves, rollups maintained from what changed, and a cycle's cost against the history.

Real emulator, real handler output (sales_ops.load.synthetic), real DuckDB; no mocks.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from sales_ops.catalog import glue
from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.compaction import compact
from sales_ops.curated.rollup_store import load_state
from sales_ops.curated.rollups import ROLLUPS, build_rollup, build_rollups, running_build, window_start
from sales_ops.curated.tables import DELTA_COLUMNS, DELTA_PREFIX, DELTA_TABLE, list_sizes, live_deltas
from sales_ops.dashboard.snapshot import all_of_orders_live, live_query
from sales_ops.load.shop import write_catalogue
from sales_ops.load.synthetic import ChangeStream, TimedChange, plan_changes, raw_lines, write_lines
from sales_ops.quality.checks import check_amounts, check_rejected, check_unique_order_id
from sales_ops.query import DuckDBEngine
from sales_ops.query.errors import ScanCutoffError
from sales_ops.query.meter import Meter
from sales_ops.schema import ORDER_VALUE_FIELDS
from sales_ops.settings import Settings
from tests.harness import drop_bucket, own_space

CUSTOMER_ORDERS = 1200  # enough customers that a bucket's partials are more than Parquet footers
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture()
def engine(space: Settings) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(space) as eng:
        yield eng


def deliver(settings: Settings, lines: list[tuple[str, bytes]]) -> None:
    write_lines(settings, lines)
    LocalCrawler(settings).run()


def latest(engine: DuckDBEngine, settings: Settings) -> dict[str, dict]:
    rows = engine.query(f"SELECT * FROM {settings.database}.orders_latest").as_dicts()
    ids = [r["order_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an order exists more than once"
    return {r["order_id"]: r for r in rows}


def assert_matches(rows: dict[str, dict], truth: dict[str, dict]) -> None:
    assert sorted(rows) == sorted(truth)
    for order_id, want in truth.items():
        got = rows[order_id]
        assert {f: got[f] for f in ORDER_VALUE_FIELDS} == {f: want[f] for f in ORDER_VALUE_FIELDS}, order_id
        assert got["order_date"].isoformat() == want["created_at"][:10]


# --- issue 23, items 1-2: one odd value never wedges compaction -----------------------------------

BAD_VALUES: list[tuple[dict, str]] = [
    ({"quantity": "abc"}, "quantity"),
    ({"order_total": 1e10}, "order_total"),
    ({"order_total": 12345678901234567890123456789012345678}, "order_total"),
    ({"unit_price": "1E+125"}, "unit_price"),
    ({"created_at": "not a date"}, "created_at"),
    ({"created_at": "2026-02-30T10:00:00.000Z"}, "created_at"),
    ({"created_at": 1764000000}, "created_at"),
    ({"created_at": "99999-01-01T00:00:00.000Z"}, "created_at"),
    ({"status": "cancelled"}, "status"),
    ({"status": None}, "status"),
    ({"quantity": 1.5}, "quantity"),
]


def odd_lines(template: bytes, sequence: int) -> tuple[list[bytes], dict[str, str]]:
    """One new order per odd value, each a copy of a good INSERT with that value; and the reason
    word each must be rejected for."""
    base = json.loads(template)
    lines, why = [], {}
    for i, (change, field) in enumerate(BAD_VALUES):
        event = {**base, **change, "order_id": f"ord-odd-{i:02d}", "event_id": uuid.uuid4().hex}
        event["sequence_number"] = str(sequence + i)
        lines.append(json.dumps(event).encode() + b"\n")
        why[event["order_id"]] = field
    return lines, why


def test_odd_values_are_rejected_by_name_and_never_stop_the_others(
    space: Settings, engine: DuckDBEngine
) -> None:
    stream = ChangeStream(seed=5)
    changes = plan_changes(60, END - timedelta(days=2), END, seed=5)
    lines = list(raw_lines(changes, stream))
    insert = next(x for _, x in lines if json.loads(x)["event_type"] == "INSERT")
    odd, why = odd_lines(insert, 10**30)
    # An order placed at 23:30 New York time files under the next UTC day.
    offset = {**json.loads(insert), "order_id": "ord-offset", "event_id": uuid.uuid4().hex}
    offset |= {"created_at": "2026-06-01T23:30:00-05:00", "sequence_number": str(10**30 + 99)}
    partition = lines[-1][0]
    good_after = list(raw_lines(plan_changes(10, END - timedelta(hours=3), END, seed=6), stream))
    # The odd lines share objects with good orders (the same partition, before and after them).
    deliver(space, lines + [(partition, x) for x in odd] + [(partition, json.dumps(offset).encode() + b"\n")])
    first = compact(space, engine)
    deliver(space, good_after)
    second = compact(space, engine)
    assert first.rejected == len(odd) and second.rejected == 0

    rows = latest(engine, space)
    truth = stream.live_orders()
    assert not set(why) & set(rows), "a rejected change reached orders_latest"
    assert {k: v for k, v in rows.items() if k != "ord-offset"}.keys() == truth.keys()
    assert rows["ord-offset"]["order_date"].isoformat() == "2026-06-02"

    outcome = check_rejected(engine)
    assert not outcome.passed
    listed = {c["order_id"]: c["reason"] for c in outcome.details["changes"]}
    assert listed.keys() == why.keys()
    assert all(listed[order].startswith(field) for order, field in why.items()), listed
    assert "ord-odd-00: quantity abc is not a whole number" in outcome.summary

    # A rebuild rejects the same and gives the same table; a good change of an odd order clears it.
    compact(space, engine, full=True)
    assert latest(engine, space) == rows
    fixed = {**json.loads(insert), "order_id": "ord-odd-00", "event_id": uuid.uuid4().hex}
    fixed["sequence_number"] = str(10**31)
    deliver(space, [(partition, json.dumps(fixed).encode() + b"\n")])
    compact(space, engine)
    still = {c["order_id"] for c in check_rejected(engine).details["changes"]}
    assert still == set(why) - {"ord-odd-00"} and "ord-odd-00" in latest(engine, space)

    # A later delete supersedes too: a good order (ord-odd-00 now) gets an odd change, listed, and is
    # then deleted (a Keys-only REMOVE: no date); it is gone, as its latest change says, and unlisted.
    odd_again = {**json.loads(insert), "order_id": "ord-odd-00", "event_id": uuid.uuid4().hex}
    odd_again |= {"quantity": "abc", "sequence_number": str(10**31 + 1)}
    deliver(space, [(partition, json.dumps(odd_again).encode() + b"\n")])
    compact(space, engine)
    assert "ord-odd-00" in {c["order_id"] for c in check_rejected(engine).details["changes"]}
    removed = {"event_id": uuid.uuid4().hex, "event_type": "REMOVE", "order_id": "ord-odd-00"}
    removed |= {"event_time": json.loads(insert)["event_time"], "sequence_number": str(10**31 + 2)}
    removed |= {"is_deleted": True} | {f: None for f in ORDER_VALUE_FIELDS if f != "order_id"}
    deliver(space, [(partition, json.dumps(removed).encode() + b"\n")])
    compact(space, engine)
    still = {c["order_id"] for c in check_rejected(engine).details["changes"]}
    assert still == set(why) - {"ord-odd-00"} and "ord-odd-00" not in latest(engine, space)


# --- issue 23, item 3: an order exists once, as its latest change says ----------------------------


def moves(start: datetime) -> list[TimedChange]:
    """Three orders: one moved to a later day, one to an earlier day, one deleted and created again
    on another day."""
    t = start.timestamp()
    day = 86400
    iso = lambda at: datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
    fields = {
        "customer_id": "cust-1",
        "product_id": "prod-1",
        "product_name": "Widget",
        "category": "tools",
        "quantity": 2,
        "unit_price": Decimal("5.00"),
        "status": "PLACED",
        "channel": "web",
        "region": "eu",
    }
    return [
        TimedChange(t, "ord-later", "put", {**fields, "order_id": "ord-later"}),
        TimedChange(t + 10, "ord-earlier", "put", {**fields, "order_id": "ord-earlier"}),
        TimedChange(t + 20, "ord-again", "put", {**fields, "order_id": "ord-again"}),
        TimedChange(t + 3 * day, "ord-later", "put", {"created_at": iso(t + 3 * day), "status": "PAID"}),
        TimedChange(t + 3 * day, "ord-earlier", "put", {"created_at": iso(t - 3 * day), "status": "PAID"}),
        TimedChange(t + 3 * day, "ord-again", "delete"),
    ]


def test_an_order_whose_created_at_moves_exists_once(space: Settings, engine: DuckDBEngine) -> None:
    stream = ChangeStream(seed=9)
    start = END - timedelta(days=6)
    history = plan_changes(40, start, END, seed=9)
    changes = sorted(history + moves(start), key=lambda c: c.at)
    again = TimedChange(END.timestamp() - 60, "ord-again", "put", {**moves(start)[2].fields})
    first, rest = changes[: len(changes) // 2], changes[len(changes) // 2 :]
    deliver(space, list(raw_lines(first, stream)))
    compact(space, engine, fold_fraction=0)  # the first days in the base
    deliver(space, list(raw_lines(rest, stream)))
    compact(space, engine, fold_fraction=1e9)  # the moves in deltas, over the base
    assert live_deltas(space)
    assert_matches(latest(engine, space), stream.live_orders())
    deliver(space, list(raw_lines([again], stream)))
    compact(space, engine, fold_fraction=1e9)
    assert_matches(latest(engine, space), stream.live_orders())
    compact(space, engine, fold_fraction=0)  # folded: the old partitions lost them
    assert not live_deltas(space)
    incremental = latest(engine, space)
    assert_matches(incremental, stream.live_orders())
    assert check_unique_order_id(engine, full=True).passed
    compact(space, engine, full=True)
    assert latest(engine, space) == incremental


def test_a_fold_finds_a_moved_order_in_a_date_no_delta_touches(space: Settings, engine: DuckDBEngine) -> None:
    """A fold looks for an order in every date only when it may live outside the dates the deltas
    touch (compact_orphans.sql): here its created_at moved three days on, and nothing else changed
    on its old day, so only that lookup finds its old row."""
    stream = ChangeStream(seed=11)
    start = END - timedelta(days=6)
    placed = [c for c in moves(start) if c.order_id == "ord-later" and c.op == "put"]
    deliver(space, list(raw_lines(placed[:1], stream)))
    compact(space, engine, fold_fraction=0)  # the order in the base, on its first day
    deliver(space, list(raw_lines(placed[1:], stream)))  # its created_at moves 3 days on
    compact(space, engine, fold_fraction=0)  # a delta of that day only, folded at once
    assert not live_deltas(space)
    rows = latest(engine, space)  # (asserts the order exists once)
    assert_matches(rows, stream.live_orders())
    assert rows["ord-later"]["order_date"] == (start + timedelta(days=3)).date()
    assert check_unique_order_id(engine, full=True).passed


def test_deltas_written_before_new_order_existed_are_read_and_folded(
    space: Settings, engine: DuckDBEngine, tmp_path: Path
) -> None:
    """A lake from before `new_order`: its orders_delta table lacks the column and its live delta's
    files too. The next run adds the column (older files read as NULL, as Athena reads Parquet by
    name), readers still see every order, and the fold takes those orders for not new (it looks for
    them in every date) and gives the same table."""
    stream = ChangeStream(seed=13)
    lines = list(raw_lines(plan_changes(40, END - timedelta(days=4), END, seed=13), stream))
    first, rest = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    deliver(space, first)
    compact(space, engine, fold_fraction=0)
    deliver(space, rest)
    compact(space, engine, fold_fraction=1e9)  # a live delta, then made as an older run wrote it
    s3 = space.client("s3")
    for key in [k for k, _ in list_sizes(space, DELTA_PREFIX) if k.endswith(".parquet")]:
        local = tmp_path / "delta.parquet"
        local.write_bytes(s3.get_object(Bucket=space.bucket, Key=key)["Body"].read())
        duckdb.sql(f"COPY (SELECT * EXCLUDE (new_order) FROM '{local}') TO '{tmp_path / 'old.parquet'}'")
        old_key = f"{key.rsplit('/', 1)[0]}/old-{uuid.uuid4().hex}.parquet"  # files are never rewritten
        s3.put_object(Bucket=space.bucket, Key=old_key, Body=(tmp_path / "old.parquet").read_bytes())
        s3.delete_object(Bucket=space.bucket, Key=key)
    old = [c for c in DELTA_COLUMNS if c[0] != "new_order"]
    glue.put_table(
        space, glue.parquet_table_input(DELTA_TABLE, old, space.s3_uri(DELTA_PREFIX), [("delta", "string")])
    )
    assert live_deltas(space)

    compact(space, engine, fold_fraction=1e9)  # nothing new: the table gets its column
    assert glue.require_table(space, DELTA_TABLE)["Parameters"][glue.COLUMNS_ADDED] == "true"
    assert_matches(latest(engine, space), stream.live_orders())
    assert compact(space, engine, fold_fraction=0).folded
    assert_matches(latest(engine, space), stream.live_orders())


# --- §2.7: rollups maintained from what changed equal a computation from scratch --------------------


def scratch(engine: DuckDBEngine, settings: Settings, customer_days: int = 30) -> dict[str, set]:
    """Each rollup computed from orders_latest in one query, as the pre-issue-20 SQL did
    (customer_activity over the orders of its window's days)."""
    db = settings.database
    sale = "status NOT IN ('CANCELLED', 'RETURNED')"
    hourly = engine.query(
        f"SELECT CAST(date_trunc('hour', from_iso8601_timestamp(created_at)) AS TIMESTAMP), "
        f"product_id, product_name, category, count(*), count_if({sale}), "
        f"sum(CASE WHEN {sale} THEN quantity ELSE 0 END), "
        f"sum(CASE WHEN {sale} THEN order_total ELSE 0 END) FROM {db}.orders_latest GROUP BY 1, 2, 3, 4"
    )
    created = "CAST(from_iso8601_timestamp(created_at) AS TIMESTAMP)"
    customers = engine.query(
        f"SELECT customer_id, count(*), count_if({sale}), sum(CASE WHEN {sale} THEN order_total ELSE 0 END), "
        f"min({created}), max({created}) "
        f"FROM {db}.orders_latest WHERE order_date > current_date - INTERVAL '{customer_days}' DAY "
        "GROUP BY customer_id"
    )
    units = engine.query(
        f"SELECT product_id, sum(quantity) FROM {db}.orders_latest WHERE {sale} GROUP BY product_id"
    )
    sold = (
        f"count(*), count_if({sale}), sum(CASE WHEN {sale} THEN quantity ELSE 0 END), "
        f"sum(CASE WHEN {sale} THEN order_total ELSE 0 END) FROM {db}.orders_latest"
    )
    totals = engine.query(
        " UNION ALL ".join(
            [f"SELECT '{kind}', {column}, {sold} GROUP BY {column}" for kind, column in DASHBOARD_GROUPS]
            + [f"SELECT 'all', NULL, {sold}"]
        )
    )
    return {
        "sales_by_product_hourly": set(hourly.rows),
        "customer_activity": set(customers.rows),
        "units_sold": {r for r in units.rows if r[1]},
        "sales_totals": {r for r in totals.rows if r[2]},
    }


DASHBOARD_GROUPS = [
    ("product", "product_name"),
    ("category", "category"),
    ("channel", "channel"),
    ("region", "region"),
]


def maintained(engine: DuckDBEngine, settings: Settings) -> dict[str, set]:
    db = settings.database
    hourly = engine.query(
        f"SELECT order_hour, product_id, product_name, category, orders, sales, units, total_sales "
        f"FROM {db}.sales_by_product_hourly"
    )
    customers = engine.query(
        f"SELECT customer_id, orders, sales, spend, first_order_at, last_order_at FROM {db}.customer_activity"
    )
    units = engine.query(f"SELECT product_id, units_sold FROM {db}.inventory_status WHERE units_sold <> 0")
    totals = engine.query(
        f"SELECT kind, value, live_orders, orders, units, total_sales FROM {db}.sales_totals"
    )
    return {
        "sales_by_product_hourly": set(hourly.rows),
        "customer_activity": set(customers.rows),
        "units_sold": set(units.rows),
        "sales_totals": set(totals.rows),
    }


def history_in_parts(
    seed: int, orders: int, days: int, parts: int, keys_only_deletes: float
) -> tuple[random.Random, list[list[tuple[str, bytes]]]]:
    """A seeded history through the real handler, cut at random into `parts` deliveries; the
    random source goes on for the caller's own choices."""
    rng = random.Random(seed)
    changes = plan_changes(
        orders, END - timedelta(days=days), END, seed=seed, keys_only_deletes=keys_only_deletes
    )
    lines = list(raw_lines(changes, ChangeStream(seed=seed)))
    cuts = sorted(rng.sample(range(1, len(lines)), parts - 1))
    return rng, [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]


def test_rollups_from_what_changed_equal_a_computation_from_scratch(
    space: Settings, engine: DuckDBEngine
) -> None:
    write_catalogue(space)
    rng, parts = history_in_parts(seed=20, orders=150, days=8, parts=6, keys_only_deletes=0.5)
    for i, part in enumerate(parts):
        late = rng.sample(part, min(5, len(part)))  # replayed lines: at-least-once delivery
        deliver(space, part + late)
        compact(space, engine, fold_fraction=rng.choice([0.0, 0.25, 1e9]))
        reports = build_rollups(space, engine)
        assert maintained(engine, space) == scratch(engine, space), f"after part {i}"
        if i:  # rebuilt only the dates that changed
            hourly = reports[ROLLUPS.index("sales_by_product_hourly")]
            assert len(hourly.dates_rebuilt) < 10
    compact(space, engine, full=True)  # a rebuild: new versions of every date
    build_rollups(space, engine)
    assert maintained(engine, space) == scratch(engine, space)


def test_customer_activity_covers_its_window_and_dates_leaving_it_come_off(
    space: Settings, engine: DuckDBEngine
) -> None:
    """customer_activity sums the partials of the last 30 days (WINDOW_DAYS): a build whose window
    shrank leaves the dates that left it out, as days passing does, and drops their partials."""
    write_catalogue(space)
    stream = ChangeStream(seed=50)
    deliver(space, list(raw_lines(plan_changes(60, END - timedelta(days=16), END, seed=50), stream)))
    compact(space, engine)
    query = (
        "SELECT customer_id, orders, sales, spend, first_order_at, last_order_at "
        f"FROM {space.database}.customer_activity"
    )
    for days in (17, 10, 5):  # the first build over every date; then dates leave the window
        report = build_rollup(space, engine, "customer_activity", window_days=days)
        assert set(engine.query(query).rows) == scratch(engine, space, days)["customer_activity"], days
        assert not report.dates_rebuilt or days == 17, "no date's orders changed: no partial rebuilt"
        partials = glue.list_partitions(space, "customer_activity_daily")
        assert min(p["Values"][0] for p in partials) >= window_start(days), "dates out of the window dropped"
    assert set(engine.query(query).rows) != scratch(engine, space, 17)["customer_activity"]


def test_customer_activity_is_built_in_passes_by_customer_bucket_under_the_cutoff(
    space: Settings, engine: DuckDBEngine
) -> None:
    """At 1,000 changes/s the window's customers pass the 1 GiB cutoff (issue 20). Here the build
    is planned for a cutoff that cancels one statement over the window's partials (as Athena would):
    the partials are written in more buckets and the build goes in passes of buckets, each pass
    and its segment figures under that cutoff, with the same table as one statement, and the
    dashboard's figures (written per pass) equal to those of the whole table. (The partials' own
    INSERTs read a date of orders_latest each: a date is what they cannot split, and here a small
    date's Parquet footers outweigh a bucket's partials, so they run without the cutoff.)"""
    write_catalogue(space)
    stream = ChangeStream(seed=51)
    changes = plan_changes(CUSTOMER_ORDERS, END - timedelta(hours=20), END, seed=51)
    deliver(space, list(raw_lines(changes, stream)))
    compact(space, engine, fold_fraction=0)
    meter = Meter()
    one = build_rollup(space, meter.engine(engine), "customer_activity")
    assert one.statements == 3, "at a small shop: one partials INSERT, one pass and its segments"
    db = space.database
    query = (
        f"SELECT customer_id, orders, sales, spend, first_order_at, last_order_at FROM {db}.customer_activity"
    )
    expected = scratch(engine, space)["customer_activity"]
    assert set(engine.query(query).rows) == expected

    built, summary = "INSERT INTO customer_activity__build", "INSERT INTO customer_segments__versions"
    (one_pass,) = [s.bytes_scanned for s in meter.statements if s.label == built]
    capped = replace(space, scan_cutoff_bytes=one_pass * 2 // 3)
    with DuckDBEngine(capped) as small, pytest.raises(ScanCutoffError):  # as Athena would cancel it
        small.query(
            "SELECT customer_id, sum(orders), sum(sales), sum(spend), min(first_order_at), "
            f"max(last_order_at) FROM {db}.customer_activity_daily GROUP BY 1"
        )
    meter = Meter()
    passes = build_rollup(capped, meter.engine(engine), "customer_activity")
    buckets = load_state(capped, "customer_activity_daily")["buckets"]
    assert buckets > 1
    dates = {p["Values"][0] for p in glue.list_partitions(space, "customer_activity_daily")}
    assert sorted(passes.dates_rebuilt) == sorted(dates), "a new bucket count: every date anew"
    customers = [s for s in meter.statements if s.label in (built, summary)]
    assert len(customers) >= 4, "built in passes, each with its segment figures"
    assert max(s.bytes_scanned for s in customers) <= capped.scan_cutoff_bytes
    assert set(engine.query(query).rows) == expected
    placed = engine.query(f"SELECT DISTINCT customer_id, bucket FROM {db}.customer_activity_daily").rows
    # Each customer in the bucket of md5's first byte, as Athena computes it too.
    assert {b for _, b in placed} == set(range(buckets))
    assert all(hashlib.md5(c.encode()).digest()[0] % buckets == b for c, b in placed)
    version = running_build(capped, "customer_activity").version
    segments = {r[0]: r[1:] for r in engine.named("dashboard_customers", version=version).rows}
    whole = engine.query(
        "SELECT CASE WHEN orders > 1 THEN 'returning' ELSE 'new' END, count(*), sum(orders), sum(spend) "
        f"FROM {db}.customer_activity GROUP BY 1"
    ).rows
    assert segments == {r[0]: r[1:] for r in whole}


# --- issue 20: the dashboard from the running totals plus the open dates equals orders_live --------


def dashboard(engine: DuckDBEngine, sql: str) -> set[tuple]:
    """dashboard_live's rows but the newest event time (the totals keep a running max)."""
    return {
        (
            r["kind"],
            r["value"],
            r["live_orders"],
            r["orders"],
            r["units"],
            Decimal(r["total_sales"]),
            Decimal(r["sales_today"]),
            r["orders_today"],
            Decimal(r["sales_last_hour"]),
            r["orders_last_hour"],
        )
        for r in engine.execute(sql).as_dicts()
    }


def test_the_dashboard_from_totals_and_open_dates_equals_all_of_orders_live(
    space: Settings, engine: DuckDBEngine
) -> None:
    """At every moment of a history (new orders, updates, status changes, deletes, Keys-only ones,
    replays; a tail not compacted, deltas not folded, folds, totals built or behind) the bounded
    statement gives every row the statement over all of orders_live gives, and reads fewer dates."""
    write_catalogue(space)
    rng, parts = history_in_parts(seed=40, orders=120, days=10, parts=7, keys_only_deletes=0.3)
    bounded_reads = []
    for i, part in enumerate(parts):
        deliver(space, part + rng.sample(part, min(3, len(part))))  # with replayed lines
        if i == 0 or rng.random() < 0.7:
            compact(space, engine, fold_fraction=rng.choice([0.0, 0.25, 1e9]))
        if i == 0 or rng.random() < 0.5:
            build_rollup(space, engine, "sales_totals")
        query = live_query(space, engine)
        assert query.open_dates is not None
        assert dashboard(engine, query.sql) == dashboard(engine, all_of_orders_live(space)), f"after part {i}"
        bounded_reads.append(len(query.open_dates))
    compact(space, engine, fold_fraction=0.0)
    build_rollup(space, engine, "sales_totals")
    query = live_query(space, engine)
    assert dashboard(engine, query.sql) == dashboard(engine, all_of_orders_live(space))
    assert min(bounded_reads) < 10, f"every date was open at every step: {bounded_reads}"


def test_a_keys_only_delete_of_an_old_order_leaves_the_dashboard_at_once(
    space: Settings, engine: DuckDBEngine
) -> None:
    """A REMOVE without its image has no date: the dashboard finds the order's date in the base
    (dashboard_dateless_dates.sql), in the tail and then in a delta, so the old date is read live."""
    write_catalogue(space)
    stream = ChangeStream(seed=12)
    start = END - timedelta(days=5)
    placed = [c for c in moves(start) if c.op == "put" and c.at == start.timestamp()]
    deliver(space, list(raw_lines(placed, stream)))
    compact(space, engine, fold_fraction=0)
    build_rollup(space, engine, "sales_totals")
    gone = TimedChange(END.timestamp(), "ord-later", "delete", {"__keys_only": True})
    deliver(space, list(raw_lines([gone], stream)))
    for step in ("in the tail", "in a delta", "folded"):
        if step != "in the tail":
            compact(space, engine, fold_fraction=0 if step == "folded" else 1e9)
        query = live_query(space, engine)
        assert start.date() in query.open_dates, step
        rows = dashboard(engine, query.sql)
        assert rows == dashboard(engine, all_of_orders_live(space)), step
        assert ("all", None) in {r[:2] for r in rows} and next(r for r in rows if r[0] == "all")[2] == 0, step


# --- issue 20: a cycle's cost does not grow with the history -------------------------------------


def cycle_cost(space: Settings, days: int) -> dict[str, tuple[int, int]]:
    """Statements and bytes of each stage of one cycle (compact, rollups, checks, a dashboard
    refresh, then a fold) over a history of `days` days at the same rate, for the same change set."""
    write_catalogue(space)
    stream = ChangeStream(seed=30)
    history = plan_changes(12 * days, END - timedelta(days=days), END - timedelta(days=1), seed=31)
    deliver(space, list(raw_lines(history, stream)))
    with DuckDBEngine(space) as plain:
        compact(space, plain, fold_fraction=0)
        build_rollups(space, plain)
        change_set = plan_changes(20, END - timedelta(days=1), END, seed=32)
        deliver(space, list(raw_lines(change_set, stream)))
        meter = Meter()
        metered = meter.engine(plain)
        with meter.stage("compaction"):
            compact(space, metered, fold_fraction=1e9)  # a cycle: deltas only
        with meter.stage("rollups"):
            for name in ROLLUPS:
                build_rollup(space, metered, name)
        with meter.stage("checks"):
            assert check_unique_order_id(metered).passed and check_amounts(metered).passed
        with meter.stage("dashboard"):  # the live panels' statement(s) of one refresh
            assert metered.execute(live_query(space, metered).sql).rows
        with meter.stage("fold"):  # the deltas into the base: the touched dates, not every date
            assert compact(space, metered, fold_fraction=0).folded
        assert max(s.bytes_scanned for s in meter.statements) < space.scan_cutoff_bytes
        return meter.totals()


def test_a_cycle_reads_the_same_bytes_whatever_the_history(space: Settings, tmp_path: Path) -> None:
    cutoff = 8 * 1024**2
    small = cycle_cost(replace(space, scan_cutoff_bytes=cutoff), days=4)
    other = own_space(space, tmp_path / "long", "lng")
    try:
        big = cycle_cost(replace(other, scan_cutoff_bytes=cutoff), days=24)
    finally:
        drop_bucket(other)
    for stage, (statements, read) in small.items():
        more, read_big = big[stage]
        assert more == statements, stage
        assert read_big <= 1.5 * read, f"{stage}: {read_big} bytes with 6x the history, {read} before"


def test_the_cadence_is_read_from_the_environment_and_must_divide_an_hour() -> None:
    from sales_ops.settings import SettingsError, cadence_cron, cadence_minutes_from_env

    assert cadence_minutes_from_env({}) == 5
    assert cadence_minutes_from_env({"SALES_OPS_CADENCE_MINUTES": "15"}) == 15
    assert cadence_cron(15) == "*/15 * * * *" and cadence_cron(60) == "0 * * * *"
    for bad in ("7", "0", "-5", "five", "90"):
        with pytest.raises(SettingsError, match="SALES_OPS_CADENCE_MINUTES"):
            cadence_minutes_from_env({"SALES_OPS_CADENCE_MINUTES": bad})
