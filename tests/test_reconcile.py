"""Reconciliation by keys (the `sample` source), rejected changes, and what a sample costs.

On a stack of its own: a change the real Lambda rejects (an item nested deeper than it accepts)
lands under errors/processing-failed/, and reconciliation calls that order rejected, with the
reason, not missing. On synthetic lakes of two history sizes: the sample's bytes do not grow with
the history while the full comparison's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.compaction import compact
from sales_ops.load.shop import run_load
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.quality.checks import check_no_processing_failed
from sales_ops.quality.reconciliation import check_reconciliation, scan_orders
from sales_ops.query import DuckDBEngine
from sales_ops.settings import Settings
from sales_ops.targets import crawler_for
from tests.harness import drop_bucket, own_space, put_orders_table, stack_settings

pytestmark = pytest.mark.slow

DEPTH = 70  # the handler refuses values nested deeper than 64 levels (docs/design.md §2.2)
REJECTED = "ord-too-deep"


def deep_value(depth: int) -> dict:
    value: dict = {"S": "bottom"}
    for _ in range(depth):
        value = {"M": {"inner": value}}
    return value


def put_order(settings: Settings, order_id: str, status: str = "PLACED", **extra: dict) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    text = {
        "order_id": order_id,
        "customer_id": "cus-rec",
        "product_id": "sku-0001",
        "product_name": "Test Mug",
        "category": "home",
        "status": status,
        "channel": "web",
        "region": "us-east",
        "created_at": now,
        "updated_at": now,
    }
    item = {k: {"S": v} for k, v in text.items()}
    item |= {"quantity": {"N": "2"}, "unit_price": {"N": "5.00"}, "order_total": {"N": "10.00"}, **extra}
    settings.client("dynamodb").put_item(TableName=settings.table, Item=item)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, DuckDBEngine]]:
    """40 orders and one whose change the Lambda rejects, delivered and compacted."""
    settings = stack_settings(tmp_path_factory.mktemp("reconcile"))
    supervisor.up(settings, log=lambda *_: None)
    try:
        run_load(settings, orders=40, rate=0, seed=20)
        put_order(settings, REJECTED, deep=deep_value(DEPTH))
        wait_delivered(settings, timeout=120, poll=0.1)
        crawler_for(settings).run()
        with DuckDBEngine(settings) as engine:
            compact(settings, engine)
            yield settings, engine
    finally:
        supervisor.down(settings, log=lambda *_: None)


@pytest.mark.parametrize("source", ["scan", "sample"])
def test_a_rejected_change_is_reported_as_rejected_not_missing(
    stack: tuple[Settings, DuckDBEngine], source: str
) -> None:
    settings, engine = stack
    outcome = check_reconciliation(settings, engine, source)
    details = outcome.details
    assert details["missing"] == details["extra"] == details["different"] == 0, details
    assert list(details["rejected_sample"]) == [REJECTED]
    reason = details["rejected_sample"][REJECTED]
    assert "Lambda.ProcessingFailedStatus" in reason and "64" in reason, reason
    assert outcome.passed, "backfill cannot repair a rejected change: no_processing_failed fails for it"
    assert "rejected" in outcome.summary and REJECTED in outcome.summary
    assert "backfill" not in outcome.summary

    failed = check_no_processing_failed(settings)
    assert not failed.passed
    assert f"rejected orders: {REJECTED} (" in failed.summary
    assert failed.details["rejected_orders"] == [{"order_id": REJECTED, "reason": reason}]


def test_the_sample_finds_a_missing_an_extra_and_a_different_order(
    stack: tuple[Settings, DuckDBEngine],
) -> None:
    settings, engine = stack
    ddb = settings.client("dynamodb")
    assert check_reconciliation(settings, engine, "sample").passed
    changed, deleted = sorted(o for o in scan_orders(settings) if o != REJECTED)[:2]
    put_order(settings, "ord-not-compacted")  # in the table, not yet in orders_latest: missing
    ddb.update_item(
        TableName=settings.table,
        Key={"order_id": {"S": changed}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "RETURNED"}},
    )
    ddb.delete_item(TableName=settings.table, Key={"order_id": {"S": deleted}})  # extra in the lake
    wait_delivered(settings, timeout=60, poll=0.1)

    outcome = check_reconciliation(settings, engine, "sample")
    assert not outcome.passed
    details = outcome.details
    assert (details["missing"], details["extra"], details["different"]) == (1, 1, 1), details
    assert details["missing_sample"] == ["ord-not-compacted"]
    assert details["extra_sample"] == [deleted]
    assert details["different_sample"][changed]["status"]["dynamodb"] == "RETURNED"
    assert "sales-ops backfill" in outcome.summary

    compact(settings, engine)
    assert check_reconciliation(settings, engine, "sample").passed


# --- what a sample costs -------------------------------------------------------------------------


def synthetic_lake(stack: Settings, state_dir: Path, days: int, orders: int, seed: int) -> Settings:
    """A bucket, database and DynamoDB table of their own: `days` of history (the mock shop's
    lifecycles through the real handler), compacted, and the table holding the same orders."""
    settings = replace(own_space(stack, state_dir, "rec"), table=f"orders-rec-{seed}")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    stream = ChangeStream(seed=seed)
    write_lines(settings, raw_lines(plan_changes(orders, end - timedelta(days=days), end, seed=seed), stream))
    LocalCrawler(settings).run()
    with DuckDBEngine(settings) as engine:
        compact(settings, engine)
    put_orders_table(settings, stream.images.values())
    return settings


def test_sample_bytes_do_not_grow_with_the_history(local_stack: Settings, tmp_path: Path) -> None:
    """The same shop, 4 days and 40 days of history: the sample reads a bounded number of
    partitions (at most 1.5 times the bytes) where the full comparison reads all of them.

    Four orders a day: each raw hour is an object the compaction reads and registers, so the
    40-day lake's cost is its events (8 a day took half again as long); the partitions of
    orders_latest, which the sample and the full comparison read, are one a day either way
    (measured: sample 40 d / 4 d at most 1.28 with 4 a day, 1.34 with 8; full 37 and 19 times)."""
    scanned: dict[int, dict[str, int]] = {}
    for days in (4, 40):
        settings = synthetic_lake(local_stack, tmp_path / str(days), days, orders=4 * days, seed=days)
        try:
            with DuckDBEngine(settings) as engine:
                sample = check_reconciliation(settings, engine, "sample")
                full = check_reconciliation(settings, engine, "scan")
            assert sample.passed and full.passed, (sample.summary, full.summary)
            assert sample.details["dynamodb_orders"] > 0
            scanned[days] = {"sample": sample.details["bytes_scanned"], "full": full.details["bytes_scanned"]}
        finally:
            settings.client("dynamodb").delete_table(TableName=settings.table)
            drop_bucket(settings)
    print("bytes scanned by reconciliation:", scanned)
    assert scanned[40]["full"] > 4 * scanned[4]["full"], "the full comparison does grow with the history"
    assert scanned[40]["sample"] <= 1.5 * scanned[4]["sample"], scanned
