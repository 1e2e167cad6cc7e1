"""orders_live: the latest state merged at read time, with only the embedded AWS running.

No crawl and no Dagster: raw_orders is provisioned with partition projection at `local up`, and
orders_live is an Athena-shaped view in Glue that the local engine resolves. Checked against
DynamoDB itself, through `sales-ops query` as a user would run it.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from sales_ops.catalog import glue
from sales_ops.curated.compaction import compact
from sales_ops.curated.live import ORDERS_LIVE
from sales_ops.load.shop import run_load, write_probe
from sales_ops.local.progress import wait_delivered
from sales_ops.query import DuckDBEngine
from sales_ops.settings import RAW_PREFIX, Settings
from tests import test_dashboard
from tests.harness import free_port, running_server, running_stack, stack_env, stop_process
from tests.helpers import dynamodb_items

pytestmark = pytest.mark.slow
chromium, browser = test_dashboard.chromium, test_dashboard.browser  # headless Chromium, shared


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack of this module's own: its DynamoDB table is compared whole with orders_live."""
    with running_stack(tmp_path_factory.mktemp("live")) as settings:
        yield settings


def cli(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sales_ops.cli", *args]
    return subprocess.run(cmd, env=stack_env(settings), capture_output=True, text=True, timeout=timeout)


LIVE_TOTALS = "SELECT count(*) AS orders, coalesce(sum(order_total), 0) AS total FROM orders_live"


def live_totals(settings: Settings) -> tuple[int, Decimal]:
    result = cli(settings, "query", LIVE_TOTALS, "--format", "json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return int(row["orders"]), Decimal(str(row["total"])).quantize(Decimal("0.01"))


def dynamodb_totals(settings: Settings) -> tuple[int, Decimal]:
    items = dynamodb_items(settings)
    return len(items), sum((Decimal(i["order_total"]) for i in items.values()), Decimal(0)).quantize(
        Decimal("0.01")
    )


def wait_equal(settings: Settings, within: float) -> tuple[int, Decimal]:
    """orders_live's totals once they equal DynamoDB's, failing after `within` seconds."""
    expected = dynamodb_totals(settings)
    deadline = time.monotonic() + within
    while True:
        got = live_totals(settings)
        if got == expected or time.monotonic() > deadline:
            assert got == expected, f"orders_live {got} vs DynamoDB {expected}"
            return got
        time.sleep(0.5)


def test_orders_live_is_an_athena_view_and_raw_orders_is_projected(stack: Settings) -> None:
    view = glue.get_table(stack, ORDERS_LIVE)
    assert view["TableType"] == "VIRTUAL_VIEW"
    assert view["ViewExpandedText"] == "/* Presto View */"
    original = view["ViewOriginalText"]
    assert original.startswith("/* Presto View: ") and original.endswith(" */")
    definition = json.loads(base64.b64decode(original[len("/* Presto View: ") : -3]))
    assert "FROM sales_ops.orders_latest" in definition["originalSql"]
    assert "FROM sales_ops.raw_orders" in definition["originalSql"]
    assert [c["name"] for c in definition["columns"]][:2] == ["order_id", "customer_id"]
    raw = glue.get_table(stack, glue.RAW_TABLE)
    assert raw["Parameters"]["projection.enabled"] == "true"
    assert raw["Parameters"]["storage.location.template"].endswith("/raw/orders/dt=${dt}/hour=${hour}/")


def test_after_load_wait_orders_live_equals_dynamodb_with_no_crawl(stack: Settings) -> None:
    load = cli(stack, "load", "--orders", "200", "--rate", "0", "--seed", "14", "--wait")
    assert load.returncode == 0, load.stderr
    # The very first `sales-ops query` after `load --wait` already answers what DynamoDB holds (its
    # wall time is mostly the CLI's start on this shared 2-core machine; the query's own time is
    # what it prints, and it is bounded here).
    result = cli(stack, "query", LIVE_TOTALS, "--format", "json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    orders, total = int(row["orders"]), Decimal(str(row["total"])).quantize(Decimal("0.01"))
    assert (orders, total) == dynamodb_totals(stack)
    assert orders > 150 and total > 0
    query_seconds = float(re.search(r", ([0-9.]+)s \(duckdb\)", result.stderr).group(1))
    assert query_seconds <= 10, result.stderr
    # Nothing was crawled or compacted: no partition is registered, orders_latest is empty.
    assert glue.list_partitions(stack, glue.RAW_TABLE) == []
    assert glue.list_partitions(stack, "orders_latest") == []


def test_after_compaction_the_tail_is_merged_pruned_and_exact(stack: Settings) -> None:
    with DuckDBEngine(stack) as engine:
        report = compact(stack, engine)
        assert report.rows > 0
        sql = glue.view_sql(glue.get_table(stack, ORDERS_LIVE))
        watermark_dt = report.watermark_after[len(RAW_PREFIX) :].split("/")[0].split("=")[1]
        assert "dt >" in sql, "the view now reads only the raw tail"
        assert f'"$path" >= \'s3://{stack.bucket}/{RAW_PREFIX}dt=' in sql, "and only objects delivered lately"
        # Changes after the compaction, updates and deletes of compacted orders among them.
        run_load(stack, orders=120, rate=0, seed=15)
        ddb = dynamodb_items(stack)
        run_load_deletes = [oid for oid in list(ddb)[:5]]
        for oid in run_load_deletes:
            stack.client("dynamodb").delete_item(TableName=stack.table, Key={"order_id": {"S": oid}})
        wait_delivered(stack, timeout=120, poll=0.1)
        wait_equal(stack, within=10)
        rows = engine.query(f"SELECT order_id, status, order_total FROM {stack.database}.orders_live").rows
        ddb = dynamodb_items(stack)
        assert {r[0]: (r[1], r[2]) for r in rows} == {
            oid: (i["status"], Decimal(i["order_total"])) for oid, i in ddb.items()
        }
        # An event filed in an hour long before the watermark is outside the tail: not read.
        old = f"{RAW_PREFIX}dt=2021-01-01/hour=00/late-object"
        line = {"order_id": "ord-from-2021", "sequence_number": "1", "is_deleted": False, "order_total": 1}
        stack.client("s3").put_object(Bucket=stack.bucket, Key=old, Body=json.dumps(line).encode() + b"\n")
        live = engine.query(
            f"SELECT count(*) FROM {stack.database}.orders_live WHERE order_id = 'ord-from-2021'"
        )
        assert live.rows == [(0,)]
        # ... while raw_orders sees the new partition at once, by projection, with no crawl.
        raw = engine.query(f"SELECT count(*) FROM {stack.database}.raw_orders WHERE dt = '2021-01-01'")
        assert raw.rows == [(1,)]
        assert watermark_dt > "2021-01-01"
        stack.client("s3").delete_object(Bucket=stack.bucket, Key=old)


@pytest.fixture(scope="module")
def dashboard(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`sales-ops dashboard` as a user starts it, on a free port, for the module's dashboard tests."""
    port = free_port()
    cmd = [sys.executable, "-m", "sales_ops.cli", "dashboard", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path_factory.mktemp("dashboard") / "dash.log"
    with running_server("sales-ops dashboard", cmd, stack_env(stack), url, log, 60):
        yield url


def test_a_probe_order_reaches_the_dashboard_total_within_10s(stack: Settings, dashboard: str) -> None:
    def total() -> Decimal:
        with urllib.request.urlopen(dashboard + "api/metrics", timeout=120) as response:
            panel = json.loads(response.read())["panels"]["total"]
        assert panel["status"] == "ok", panel
        return Decimal(panel["data"]["total_sales"])

    seconds = []
    for _ in range(3):
        before = total()
        started = time.monotonic()
        amount = write_probe(stack, f"ord-probe-{uuid.uuid4()}")
        while total() != before + amount:
            assert time.monotonic() - started < 30, "the probe never showed"
            time.sleep(0.2)
        seconds.append(time.monotonic() - started)
    assert statistics.median(seconds) <= 10, seconds


@pytest.mark.browser
def test_the_page_total_moves_while_the_live_load_runs(stack: Settings, dashboard: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    live_cmd = [sys.executable, "-m", "sales_ops.cli", "load", "--orders", "0", "--rate", "8", "--continuous"]
    # The live load starts as the page opens (its start-up overlaps the page's first load); it
    # writes changes until stopped, so the total still has to move after the first one shown.
    live = subprocess.Popen(live_cmd, env=stack_env(stack), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        browser.get(dashboard)
        total = WebDriverWait(browser, 60).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="total-sales"][data-value]')
        )
        first = WebDriverWait(browser, 120).until(lambda d: total.get_attribute("data-value"))  # a number
        seen = [first]

        def moved(driver) -> bool:
            value = driver.find_element(By.CSS_SELECTOR, '[data-testid="total-sales"]').get_attribute(
                "data-value"
            )
            if value and value != seen[-1]:
                seen.append(value)
            return len(seen) >= 2

        WebDriverWait(browser, 180, poll_frequency=0.5).until(moved)
    finally:
        stop_process(live, 20)
    assert len(set(seen)) >= 2, seen
    assert all(Decimal(v) >= 0 for v in seen)
