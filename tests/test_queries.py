"""Named queries, rollups, data-quality checks and the CLI on the real local pipeline.

One private stack for the module: a mock load (inserts, updates, deletes) runs through DynamoDB,
the Pipe, Kinesis, Firehose with the real handler, while the crawler and incremental compaction
run repeatedly (so an order's changes span compactions). Every answer is then compared with an
independent Python computation over a DynamoDB scan.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sales_ops.catalog import glue
from sales_ops.cli import app
from sales_ops.curated.compaction import compact
from sales_ops.curated.rollups import build_rollups
from sales_ops.curated.tables import LATEST_PREFIX, current_versions, live_deltas
from sales_ops.load.shop import LoadSummary, catalogue, run_load
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.quality import (
    check_amounts,
    check_freshness,
    check_no_processing_failed,
    check_raw_schema,
    check_reconciliation,
    check_unique_order_id,
    run_checks,
    scan_orders,
)
from sales_ops.query import DuckDBEngine
from sales_ops.settings import Settings
from sales_ops.targets import crawler_for
from tests.harness import DELIVERY_POLL_S, stack_env, stack_settings

pytestmark = pytest.mark.slow  # starts a stack of its own (module fixture)
NOT_SALES = ("CANCELLED", "RETURNED")


@dataclass
class Loaded:
    settings: Settings
    engine: DuckDBEngine
    summary: LoadSummary
    compactions: int


# 500 orders: ~1,600 changes (updates and deletes among them) at 300/s.
LOAD_ORDERS, LOAD_RATE = 500, 300
# Two compactions run while the load is under way (each folds its delta into the base): the load
# waits at every PACE_CHANGES changes written until that many have run, so orders change before,
# between and after them however slow the machine. The rest of the load goes into one last delta,
# not folded (orders_latest merges it with the base on read): both ways of merging an order's
# changes from different compactions are read by the tests below.
PACE_CHANGES, PACED_COMPACTIONS = 500, 2


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    settings = stack_settings(tmp_path_factory.mktemp("queries"))
    supervisor.up(settings, log=lambda *_: None)
    try:
        engine = DuckDBEngine(settings)
        result: dict = {}
        counts: Counter = Counter()
        turn = threading.Condition()

        def pace(written: int) -> None:  # the load's on_progress, in its writer threads
            with turn:
                counts["changes"] += written
                due = min(counts["changes"] // PACE_CHANGES, PACED_COMPACTIONS)
                if not counts["unpaced"] and not turn.wait_for(lambda: counts["compactions"] >= due, 120):
                    counts["unpaced"] = 1  # no compaction counted: the test below fails, nothing hangs

        load = threading.Thread(
            target=lambda: result.update(
                summary=run_load(settings, orders=LOAD_ORDERS, rate=LOAD_RATE, seed=5, on_progress=pace)
            )
        )
        load.start()
        while load.is_alive() and counts["compactions"] < PACED_COMPACTIONS:  # while orders change
            crawler_for(settings).run()
            if glue.get_table(settings, glue.RAW_TABLE):  # nothing to compact before the first object
                report = compact(settings, engine)
                with turn:
                    counts["compactions"] += bool(report.partitions_rewritten or report.deltas_written)
                    turn.notify_all()
            time.sleep(0.3)
        load.join()
        wait_delivered(settings, timeout=120, poll=DELIVERY_POLL_S)
        crawler_for(settings).run()
        compact(settings, engine, fold_fraction=math.inf)  # never folds: its delta stays live
        yield Loaded(settings, engine, result["summary"], counts["compactions"])
        engine.close()
    finally:
        supervisor.down(settings, log=lambda *_: None)


@pytest.fixture(scope="module")
def orders(loaded: Loaded) -> dict[str, dict]:
    return scan_orders(loaded.settings)


def sales(orders: dict[str, dict]) -> list[dict]:
    return [o for o in orders.values() if o["status"] not in NOT_SALES]


# --- the three queries of the original pipeline, and more ------------------------------------


def expected_total_sales_by_product(orders: dict[str, dict]) -> list[tuple]:
    by: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for o in sales(orders):
        acc = by[o["product_name"]]
        acc[0] += 1
        acc[1] += int(o["quantity"])
        acc[2] += o["order_total"]
    rows = [(name, n, units, total) for name, (n, units, total) in by.items()]
    return sorted(rows, key=lambda r: (-r[3], r[0]))


def test_the_load_had_updates_and_deletes_spanning_compactions(loaded: Loaded, orders: dict) -> None:
    assert loaded.summary.updates > loaded.summary.orders and loaded.summary.deletes > 0
    assert loaded.compactions >= 2
    assert live_deltas(loaded.settings)  # the last one's delta, merged on read
    assert 0 < len(orders) < loaded.summary.orders


def test_total_sales_by_product(loaded: Loaded, orders: dict) -> None:
    result = loaded.engine.named("total_sales_by_product")
    assert result.columns == ["product_name", "orders", "units", "total_sales"]
    assert result.rows == expected_total_sales_by_product(orders)


def test_unique_products(loaded: Loaded, orders: dict) -> None:
    result = loaded.engine.named("unique_products")
    assert result.as_dicts() == [{"product_count": len({o["product_id"] for o in orders.values()})}]


def test_sales_last_day(loaded: Loaded, orders: dict) -> None:
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = [o for o in sales(orders) if o["created_at"] >= since]
    result = loaded.engine.named("sales_last_day")
    assert result.as_dicts() == [
        {"orders": len(recent), "total_sales": sum(o["order_total"] for o in recent)}
    ]


def test_more_named_queries(loaded: Loaded, orders: dict) -> None:
    by_status = Counter(o["status"] for o in orders.values())
    rows = loaded.engine.named("orders_by_status").rows
    assert {status: n for status, n, _ in rows} == by_status
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for o in sales(orders):
        spend[o["customer_id"]] += o["order_total"]
    top = sorted(spend.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(c, s) for c, _, s in loaded.engine.named("top_customers").rows] == top


def test_updates_are_not_double_counted(loaded: Loaded, orders: dict) -> None:
    """The original pipeline summed every change's image; the latest state counts each order once."""
    truth = sum(o["order_total"] for o in sales(orders))
    original = loaded.engine.query(
        f"SELECT sum(CAST(order_total AS DECIMAL(12, 2))) FROM {loaded.settings.database}.raw_orders "
        "WHERE event_type IN ('INSERT', 'MODIFY') AND status NOT IN ('CANCELLED', 'RETURNED')"
    ).rows[0][0]
    ours = sum(row[3] for row in loaded.engine.named("total_sales_by_product").rows)
    assert ours == truth
    assert original > truth * Decimal("1.2")  # updates counted again, deleted orders still in


def test_the_raw_json_answer_is_the_same_and_costs_far_more(loaded: Loaded) -> None:
    latest = loaded.engine.named("total_sales_by_product")
    raw = loaded.engine.named("total_sales_by_product_raw")
    assert raw.rows == latest.rows
    # raw/ is gzip JSON (as Firehose writes it) and every column of every change; orders_latest is
    # Parquet, the columns asked for, one row per order (plus the unfolded deltas).
    assert latest.bytes_scanned * 2 <= raw.bytes_scanned


def test_incremental_compaction_equals_a_full_rebuild(loaded: Loaded) -> None:
    query = f"SELECT * FROM {loaded.settings.database}.orders_latest ORDER BY order_id"
    incremental = loaded.engine.query(query).rows
    report = compact(loaded.settings, loaded.engine, full=True)
    assert report.full and loaded.engine.query(query).rows == incremental


# --- rollups ----------------------------------------------------------------------------------


def test_rollups(loaded: Loaded, orders: dict) -> None:
    reports = {r.name: r for r in build_rollups(loaded.settings, loaded.engine)}
    assert set(reports) == {
        "sales_by_product_hourly",
        "customer_activity",
        "inventory_status",
        "sales_totals",
    }
    assert all(
        r.bytes_written > 0 and r.location.startswith(loaded.settings.s3_uri("curated/"))
        for r in reports.values()
    )
    db = loaded.settings.database

    hourly = loaded.engine.query(
        f"SELECT sum(orders), sum(sales), sum(units), sum(total_sales) FROM {db}.sales_by_product_hourly"
    )
    live = list(orders.values())
    assert hourly.rows == [
        (
            len(live),
            len(sales(orders)),
            sum(int(o["quantity"]) for o in sales(orders)),
            sum(o["order_total"] for o in sales(orders)),
        )
    ]

    activity = {
        r["customer_id"]: r for r in loaded.engine.query(f"SELECT * FROM {db}.customer_activity").as_dicts()
    }
    assert reports["customer_activity"].rows == len(activity) == len({o["customer_id"] for o in live})
    for customer, mine in _customers(orders).items():
        row = activity[customer]
        assert (row["orders"], row["sales"], row["spend"]) == (mine["orders"], mine["sales"], mine["spend"])
        assert row["first_order_at"].isoformat(timespec="milliseconds") == mine["first"][:-1]
        assert row["last_order_at"].isoformat(timespec="milliseconds") == mine["last"][:-1]

    stock = {
        r["product_id"]: r for r in loaded.engine.query(f"SELECT * FROM {db}.inventory_status").as_dicts()
    }
    sold = Counter()
    for o in sales(orders):
        sold[o["product_id"]] += int(o["quantity"])
    for product in catalogue():
        row = stock[product.product_id]
        assert row["units_sold"] == row["units_sold_24h"] == sold[product.product_id]
        assert row["stock_left"] == product.opening_stock - sold[product.product_id]

    # The dashboard's all-time figures: per kind and value, and in all.
    totals = {
        (r["kind"], r["value"]): r for r in loaded.engine.query(f"SELECT * FROM {db}.sales_totals").as_dicts()
    }
    every = totals[("all", None)]
    assert (every["live_orders"], every["orders"]) == (len(live), len(sales(orders)))
    assert every["total_sales"] == sum(o["order_total"] for o in sales(orders))
    for kind, field in (("product", "product_name"), ("region", "region")):
        want: Counter = Counter()
        for o in sales(orders):
            want[o[field]] += o["order_total"]
        got = {value: r["total_sales"] for (k, value), r in totals.items() if k == kind and r["orders"]}
        assert got == dict(want), kind


def _customers(orders: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for o in orders.values():
        c = out.setdefault(
            o["customer_id"], {"orders": 0, "sales": 0, "spend": Decimal(0), "first": "~", "last": ""}
        )
        c["orders"] += 1
        if o["status"] not in NOT_SALES:
            c["sales"] += 1
            c["spend"] += o["order_total"]
        c["first"], c["last"] = min(c["first"], o["created_at"]), max(c["last"], o["created_at"])
    return out


# --- the CLI --------------------------------------------------------------------------------


def cli(loaded: Loaded, *args: str):
    return CliRunner().invoke(app, list(args), env=stack_env(loaded.settings))


def test_cli_query_formats_and_bytes(loaded: Loaded, orders: dict) -> None:
    as_json = cli(loaded, "query", "--named", "total_sales_by_product", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    expected = expected_total_sales_by_product(orders)
    assert [
        (r["product_name"], r["orders"], r["units"], Decimal(str(r["total_sales"]))) for r in rows
    ] == expected
    assert "scanned" in as_json.stderr and "row(s)" in as_json.stderr

    as_csv = cli(
        loaded, "query", "SELECT status, count(*) AS n FROM orders_latest GROUP BY 1", "--format", "csv"
    )
    assert as_csv.exit_code == 0 and as_csv.stdout.splitlines()[0] == "status,n"
    table = cli(loaded, "query", "--named", "unique_products")
    assert table.exit_code == 0 and "product_count" in table.stdout and "scanned" in table.stdout


def test_cli_reports_bad_sql_and_missing_tables(loaded: Loaded) -> None:
    bad = cli(loaded, "query", "SELEC * FROM orders_latest")
    assert bad.exit_code == 1 and "syntax error at line 1" in bad.output
    unknown = cli(loaded, "query", "SELECT nope FROM orders_latest")
    assert unknown.exit_code == 1 and 'Referenced column "nope" not found' in unknown.output
    missing = cli(loaded, "query", "SELECT * FROM orders_oldest")
    assert missing.exit_code == 1 and "sales_ops.orders_oldest" in missing.output
    assert "Traceback" not in bad.output + unknown.output + missing.output
    # And from a real process, as a script would see it.
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("sales-ops")), "query", "SELECT FROM WHERE"],
        env=stack_env(loaded.settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "syntax error" in proc.stderr and proc.stdout == ""


def test_cli_crawl_compact_rollup_check(loaded: Loaded) -> None:
    crawl = cli(loaded, "crawl", "--wait", "--json")
    assert crawl.exit_code == 0 and json.loads(crawl.stdout)["tables_created"] == 0
    compacted = cli(loaded, "compact", "--json")
    assert compacted.exit_code == 0, compacted.stdout
    report = json.loads(compacted.stdout)
    # Nothing new to merge (the fixture compacted it all); a fold of the fixture's live deltas may
    # be due (whether one ran already depends on which tests ran before): it rewrites their dates.
    assert report["new_objects"] == 0 and report["deltas_written"] == []
    assert bool(report["partitions_rewritten"]) == bool(report["folded"]), report
    rollup = cli(loaded, "rollup", "--name", "customer_activity", "--json")
    assert rollup.exit_code == 0 and json.loads(rollup.stdout)[0]["name"] == "customer_activity"
    check = cli(loaded, "check", "--json")
    outcomes = json.loads(check.stdout)
    assert check.exit_code == 0, check.stdout
    assert {o["name"] for o in outcomes} == {
        "raw_schema",
        "no_processing_failed",
        "no_quarantined_objects",
        "freshness",
        "unique_order_id",
        "amounts",
        "rejected_changes",
        "reconciliation",
    }
    assert all(o["passed"] for o in outcomes)


# --- data-quality checks, failing for the right reason ------------------------------------------


def test_all_checks_pass_on_a_consistent_pipeline(loaded: Loaded) -> None:
    outcomes = run_checks(loaded.settings, loaded.engine)
    assert [(o.name, o.passed) for o in outcomes if not o.passed] == []
    assert check_raw_schema(loaded.settings).passed
    assert check_freshness(loaded.settings, 3600).passed
    stale = check_freshness(loaded.settings, 0.001)
    assert not stale.passed and "old" in stale.summary


def test_reconciliation_sees_changes_not_compacted_yet(loaded: Loaded) -> None:
    settings, ddb = loaded.settings, loaded.settings.client("dynamodb")
    order_id = next(iter(scan_orders(settings)))
    ddb.update_item(
        TableName=settings.table,
        Key={"order_id": {"S": order_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "RETURNED"}},
    )
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    outcome = check_reconciliation(settings, loaded.engine)
    assert not outcome.passed
    assert outcome.details["different"] == 1 and outcome.details["missing"] == outcome.details["extra"] == 0
    assert outcome.details["different_sample"][order_id]["status"]["dynamodb"] == "RETURNED"
    compact(settings, loaded.engine)
    assert check_reconciliation(settings, loaded.engine).passed


def test_amounts_check_names_an_inconsistent_order(loaded: Loaded) -> None:
    settings = loaded.settings
    item = {
        "order_id": {"S": "ord-bad-total"},
        "customer_id": {"S": "cus-x"},
        "product_id": {"S": "sku-0001"},
        "product_name": {"S": "x"},
        "category": {"S": "x"},
        "quantity": {"N": "2"},
        "unit_price": {"N": "5.00"},
        "order_total": {"N": "1.00"},
        "status": {"S": "PAID"},
        "channel": {"S": "web"},
        "region": {"S": "us-east"},
        "created_at": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        "updated_at": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")},
    }
    settings.client("dynamodb").put_item(TableName=settings.table, Item=item)
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    compact(settings, loaded.engine)
    outcome = check_amounts(loaded.engine)
    assert not outcome.passed and outcome.details["inconsistent_total"] == 1
    assert "ord-bad-total" in outcome.summary
    settings.client("dynamodb").delete_item(
        TableName=settings.table, Key={"order_id": {"S": "ord-bad-total"}}
    )
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    compact(settings, loaded.engine)
    assert check_amounts(loaded.engine).passed


def test_unique_order_id_check_catches_a_duplicated_file(loaded: Loaded) -> None:
    settings, s3 = loaded.settings, loaded.settings.client("s3")
    day, version = next(iter(current_versions(settings).items()))
    prefix = f"{LATEST_PREFIX}order_date={day.isoformat()}/v={version}/"
    source = s3.list_objects_v2(Bucket=settings.bucket, Prefix=prefix)["Contents"][0]["Key"]
    copy = f"{prefix}part-duplicate.parquet"
    s3.copy_object(Bucket=settings.bucket, Key=copy, CopySource={"Bucket": settings.bucket, "Key": source})
    try:  # the whole table (`check --full`): that date need not be one the last run wrote
        outcome = check_unique_order_id(loaded.engine, full=True)
        assert not outcome.passed and "duplicate" in outcome.summary
    finally:
        s3.delete_object(Bucket=settings.bucket, Key=copy)
    assert check_unique_order_id(loaded.engine, full=True).passed


def test_processing_failed_records_fail_the_check_with_the_reason(loaded: Loaded) -> None:
    settings = loaded.settings
    assert check_no_processing_failed(settings).passed
    kinesis = settings.client("kinesis")
    for data in (b"not json at all", b'{"eventName": "UPSERT"}'):
        kinesis.put_record(StreamName=settings.kinesis_stream, Data=data, PartitionKey="bad")
    wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
    outcome = check_no_processing_failed(settings)
    assert not outcome.passed and outcome.details["records"] == 2
    assert {r["errorCode"] for r in outcome.details["reasons"]} == {"Lambda.ProcessingFailedStatus"}
    assert "Lambda.ProcessingFailedStatus" in outcome.summary
    assert any("eventName" in r["errorMessage"] for r in outcome.details["reasons"])
    check = cli(loaded, "check", "--json", "--no-reconcile")
    assert check.exit_code == 1
    assert [o["name"] for o in json.loads(check.stdout) if not o["passed"]] == ["no_processing_failed"]
