"""The cost model is measured, not typed: statement counts from a real cycle, the doc from the script.

- the counts in scripts/cycle_counts.json are what one cycle runs on the local engine today (the
  test fails when a stage's statements change and the file was not re-measured);
- the metered engine records statements per stage without changing what the engine returns;
- docs/deploy-aws.md shows exactly what scripts/cost_table.py prints;
- the model follows the template and the measured figures (shards, Pipes, history growth).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sales_ops.query import DuckDBEngine
from sales_ops.query.meter import CYCLE_STAGES, Meter
from sales_ops.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cost_table.py"


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_table", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_counts_are_what_a_cycle_runs(
    cost: ModuleType, space: Settings, tmp_path: Path
) -> None:
    measured = cost.measure(space, tmp_path / "measure")
    committed = json.loads((ROOT / "scripts" / "cycle_counts.json").read_text())
    assert measured == committed, "re-measure: python scripts/cost_table.py --measure, then --write"
    # A cycle with new changes compacts; one without (the hourly backstop) runs no compaction SQL.
    assert measured["cycle"]["compact"] > 0 and measured["idle"]["compact"] == 0
    assert set(measured["cycle"]) == set(CYCLE_STAGES)


def test_the_meter_records_per_stage_and_changes_nothing(space: Settings) -> None:
    meter = Meter()
    with DuckDBEngine(space) as engine:
        metered = meter.engine(engine)
        with meter.stage("a"):
            plain = engine.query("SELECT 1 AS one, 'x' AS two")
            seen = metered.query("SELECT 1 AS one, 'x' AS two")
        with meter.stage("b"):
            with pytest.raises(Exception) as failed:
                metered.query("SELECT * FROM no_such_table")
            metered.execute(f"DROP TABLE IF EXISTS {space.database}.no_such_table")
    assert (seen.columns, seen.rows) == (plain.columns, plain.rows)
    assert type(failed.value).__name__ == "MissingTableError"  # the engine's own error, unchanged
    used = meter.by_stage()
    assert [s.label for s in used["a"].statements] == ["SELECT 1 AS"]
    assert used["a"].bytes_scanned == seen.bytes_scanned
    # The failed statement is recorded (a cancelled Athena query bills); DROP is DDL, not billed.
    assert [(s.failed, s.ddl) for s in used["b"].statements] == [(True, False), (False, True)]
    assert used["b"].count == 1


def test_the_doc_shows_the_scripts_table(cost: ModuleType) -> None:
    printed = cost.table()  # what `python scripts/cost_table.py` prints
    doc = (ROOT / "docs" / "deploy-aws.md").read_text()
    shown = doc.split("<!-- cost-table:start -->\n", 1)[1].split("\n<!-- cost-table:end -->", 1)[0]
    assert shown == printed.rstrip("\n"), "run `python scripts/cost_table.py --write`"


def test_the_table_uses_the_measured_counts(
    cost: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One more statement in a stage costs at least its 10 MB minimum in every column."""
    counts = json.loads(cost.COUNTS.read_text())
    before = [sum(a.dollars.values()) for _, _, a in cost.columns()]
    counts["cycle"]["checks"] += 1
    counts["idle"]["checks"] += 1
    bumped = tmp_path / "counts.json"
    bumped.write_text(json.dumps(counts))
    monkeypatch.setattr(cost, "COUNTS", bumped)
    after = [sum(a.dollars.values()) for _, _, a in cost.columns()]
    floor = 10 / 1024**2 * 5.0 * 730  # one 10 MB statement an hour, at $5/TB
    assert all(b - a >= floor * 0.999 for a, b in zip(before, after, strict=True))


def test_model_follows_the_template_and_the_rates(cost: ModuleType) -> None:
    params = cost.defaults(cost.read_template(ROOT / "infra" / "template.yaml"))
    cols = {label: c for label, c, _ in cost.columns()}
    idle, ten, thousand = cols["idle, month 1"], cols["10/s, month 1"], cols["1,000/s, month 1"]
    assert sum(idle.values()) < sum(ten.values()) < sum(thousand.values())
    assert idle["Kinesis Data Streams"] == params["KinesisShardCount"] * 730 * 0.015
    # 1,000 changes/s of up to 1.5 KB is past one shard's 1 MB/s: at least two shard-months.
    assert thousand["Kinesis Data Streams"] >= 2 * 730 * 0.015
    # Pipes: per 64 KB chunk of a batch (taken) is fewer requests than one per event (the other reading).
    chunks, events = cost.pipe_requests(1000.0, params)
    assert 0 < chunks < events
    # History grows: raw/ storage, the table and its PITR, and the stages that read all of it.
    m1, m12 = cols["10/s, month 1"], cols["10/s, month 12"]
    assert m12["S3 storage (raw/)"] > 10 * m1["S3 storage (raw/)"]
    assert m12["DynamoDB storage + PITR"] > m1["DynamoDB storage + PITR"]


def test_the_model_scales_reads_of_orders_by_density_and_splits_what_the_code_splits(
    cost: ModuleType,
) -> None:
    """A statement's fixed part reads orders of the dates it touches: at 100x the bench's orders a
    day it reads 100x, unless it reads rows per product; what the code splits (by date, by
    customer bucket) is billed as the statements it becomes, a date the smallest."""
    shop = cost.Shop(10.0, 12, 3.0, 1.0, 4.0, bench_orders_per_day=10 * 86400 / 3.0 / 100)
    assert shop.density == pytest.approx(100)
    orders, products = cost.Fit("check_unique_order_id", 1000, 0), cost.Fit("dashboard_inventory", 1000, 0)
    assert cost.statement_bytes(orders, shop, 10.0, "checks") == pytest.approx(100_000)
    assert cost.statement_bytes(products, shop, 10.0, "dashboard") == pytest.approx(1000)
    cutoff = 3000.0
    assert cost.split("dashboard_live", 9000, shop, cutoff) == [9000]  # not split: past it
    # Sliced readers: slices under the cutoff less the deltas' share (2,250), however big a date.
    assert cost.split("check_unique_order_id", 9000, shop, cutoff) == [2250.0] * 4
    assert cost.split("lake_rows", 2000, shop, cutoff) == [2000]
    # The dashboard's live statement: slices that each read the raw tail too, then the settled one.
    assert cost.split("WITH live AS", 9000, shop, cutoff, tail=500) == [2200.0] * 5 + [0.0]
    assert cost.split("WITH live AS", 9000, shop, cutoff, tail=2250) == [9000]  # the tail leaves no room
    assert cost.split("INSERT INTO sales_daily__versions", 900, shop, cutoff) == [900]
    # 4 dates of 1,000 bytes, 1,000 a statement at most: one date each. A date past the cutoff is
    # read in slices (under 2,250 each), added up in one more statement.
    for label in ("INSERT INTO sales_daily__versions", "INSERT INTO customer_activity_daily__versions"):
        assert cost.split(label, 4000, shop, cutoff) == [1000.0] * 4
        assert cost.split(label, 40000, shop, cutoff) == ([2000.0] * 5 + [0.0]) * 4
    assert cost.split("INSERT INTO customer_activity__build", 4500, shop, cutoff) == [900.0] * 5
    assert len(cost.split("INSERT INTO customer_activity__build", 10**9, shop, cutoff)) == cost.MAX_BUCKETS


def test_a_statement_reading_all_history_grows_in_the_model(cost: ModuleType) -> None:
    figures = {
        "rate": 10.0,
        "histories": [
            {"history_changes": 1000, "statements": {"checks": [["flat", 100], ["whole", 1000]]}},
            {"history_changes": 10000, "statements": {"checks": [["flat", 100], ["whole", 10000]]}},
        ],
    }
    flat, whole = cost.fits(figures)["checks"]
    assert (flat.g, flat.grows) == (0.0, False) and flat.a == pytest.approx(100)
    assert whole.g == pytest.approx(1.0) and whole.grows
    shop = cost.Shop(10.0, 12, 3.2, 1.0, 1.0, bench_orders_per_day=100.0)
    assert cost.statement_bytes(whole, shop, 10.0, "checks") == pytest.approx(shop.history)
    # At least 10 MB billed; past the cutoff: the cutoff, and flagged.
    assert cost.billed(1, 2**30) == (10 * 2**20, False)
    assert cost.billed(2**31, 2**30) == (2**30, True)


def test_folds_are_billed_as_their_own_stage_as_often_as_the_code_folds(cost: ModuleType) -> None:
    """The bench's cycle always folds: its compaction statements beyond the measured cycle's are a
    fold's, billed once every `cycles_per_fold` cycles (FOLD_FRACTION of the touched dates' base
    rows, MAX_DELTAS, or DELTA_SHARE of the cutoff in bytes), their merge split in buckets under the
    cutoff less the deltas, however big one date is."""
    counts = {"cycle": {"compact": 2}, "idle": {"compact": 0}}
    models = {
        "compact": [
            cost.Fit(label, 1000, 0) for label in ("delta", "rows", "compact_touched", "compact_orders")
        ]
    }
    split = cost.with_fold(models, counts)
    assert [f.label for f in split["compact"]] == ["delta", "rows"]
    assert [f.label for f in split["fold"]] == ["compact_touched", "compact_orders"]
    gib = 2.0**30
    # 100 changes/s at 3 an order: 2,880,000 orders a day; a quarter of 4 touched dates' rows is
    # 2,880,000, 30,000 changes a 300 s cycle → 96 cycles, past MAX_DELTAS (64); their bytes (100 a
    # row) reach a quarter of 1 GiB in 89.
    busy = cost.Shop(100.0, 12, 3.0, 1.0, 4.0, bench_orders_per_day=1.0)
    assert cost.cycles_per_fold(busy, 300.0, gib) == cost.MAX_DELTAS
    # 1,000 changes/s: 300,000 changes a cycle, 30 MB of deltas: a quarter of 1 GiB in 8 cycles.
    fast = cost.Shop(1000.0, 12, 3.0, 1.0, 4.0, bench_orders_per_day=1.0)
    assert cost.cycles_per_fold(fast, 300.0, gib) == 8
    # Few base rows (a young shop, one touched date): every cycle folds, but never more than once a cycle.
    young = cost.Shop(100.0, 1, 3.0, 1.0, 0.01, bench_orders_per_day=1.0)
    assert cost.cycles_per_fold(young, 300.0, gib) == 1
    # The merge: statements under the cutoff less the deltas' share (3,000 · 0.75 = 2,250 here),
    # one date bigger than the cutoff split too (buckets: no smallest unit).
    shop = cost.Shop(10.0, 12, 3.0, 1.0, 4.0, bench_orders_per_day=1.0)
    assert cost.split("compact_orders", 2000, shop, 3000.0) == [2000]
    one_date = cost.Shop(10.0, 12, 3.0, 1.0, 1.0, bench_orders_per_day=1.0)
    for label in ("compact_orders", "compact_orphans", "compact_rows"):
        pieces = cost.split(label, 40000, one_date, 3000.0)
        assert len(pieces) == 18 and sum(pieces) == pytest.approx(40000) and max(pieces) <= 2250
    # The touched dates of a fold are read from the live deltas only: at most their share.
    assert cost.split("compact_touched", 40000, one_date, 3000.0) == [750.0]
    assert cost.split("compact_touched", 500, one_date, 3000.0) == [500]
    # In the table: a fold stage that costs something while changes flow and nothing when idle.
    cols = {label: c for label, c, _ in cost.columns()}
    assert cols["idle, month 1"]["Athena: fold"] == 0
    assert 0 < cols["10/s, month 1"]["Athena: fold"] < cols["1,000/s, month 1"]["Athena: fold"]
