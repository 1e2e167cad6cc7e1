"""The live dashboard against the real local stack: its JSON API, and the page in headless Chromium.

The numbers are checked against queries of orders_live run directly through the engine, and
against each other: the panels of one refresh come from one statement (dashboard_live.sql), so
they agree even while a load runs.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sales_ops.catalog import glue
from sales_ops.curated.compaction import compact
from sales_ops.curated.rollups import build_rollup, build_rollups
from sales_ops.dashboard.app import create_app
from sales_ops.dashboard.metrics import PANEL_ERROR, RollupReads, collect_metrics
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.query import SqlEngine
from sales_ops.query.meter import Meter
from sales_ops.schema import SQL_RULES
from sales_ops.settings import Settings
from sales_ops.targets import crawler_for, engine_for
from tests.harness import free_port, running_server, stack_env
from tests.helpers import order_item

# Every test here runs on the emulator or starts `sales-ops dashboard` (even those it refuses).
pytestmark = pytest.mark.slow

PANELS = {
    "total",
    "headline",
    "orders_per_minute",
    "top_products",
    "by_category",
    "by_channel",
    "by_region",
    "customers",
    "inventory",
    "failed_records",
    "freshness",
    "raw_freshness",
}
CHARTS = 7  # orders per minute, customers, top products, category, channel, region, inventory
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings) -> Iterator[tuple[Settings, SqlEngine]]:
    """The stack after a load, a crawl, a compaction and the rollups: every dashboard table exists."""
    run_load(local_stack, orders=300, rate=0, seed=8050)
    wait_delivered(local_stack, timeout=120, poll=0.1)
    crawler_for(local_stack).run()
    engine = engine_for(local_stack)
    compact(local_stack, engine)
    build_rollups(local_stack, engine)
    try:
        yield local_stack, engine
    finally:
        engine.close()


def named_total(engine: SqlEngine) -> Decimal:
    """Sales of every live order, asked of orders_live directly (not through the dashboard's SQL)."""
    database = engine.settings.database
    sql = f"SELECT coalesce(sum(order_total), 0) FROM {database}.orders_live WHERE {SQL_RULES['is_sale']}"
    return Decimal(str(engine.query(sql).rows[0][0])).quantize(Decimal("0.01"))


def scalar(engine: SqlEngine, sql: str) -> int:
    return int(engine.query(sql).rows[0][0])


def test_metrics_api_has_every_panel_and_the_named_total(pipeline: tuple[Settings, SqlEngine]) -> None:
    settings, engine = pipeline
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8050") as client:
        response = client.get("/api/metrics")
        again = client.get("/api/metrics")
    assert response.status_code == 200
    body = response.json()
    assert again.json()["generated_at"] == body["generated_at"], "a second request within 2 s is cached"
    panels = body["panels"]
    assert set(panels) == PANELS
    assert {name: p["status"] for name, p in panels.items()} == dict.fromkeys(PANELS, "ok")
    data = {name: p["data"] for name, p in panels.items()}

    assert Decimal(data["total"]["total_sales"]) == named_total(engine)
    assert_one_moment(body)
    live = scalar(engine, f"SELECT count(*) FROM {settings.database}.orders_latest")
    assert data["headline"]["live_orders"] == live
    assert data["total"]["orders"] <= live
    customers = scalar(engine, f"SELECT count(DISTINCT customer_id) FROM {settings.database}.orders_latest")
    assert sum(s["customers"] for s in data["customers"].values()) == customers
    assert data["headline"]["customers_last_hour"] == customers, "the load just ran: all in the last hour"
    assert data["inventory"]["products"] == 60
    assert len(data["top_products"]) == 10
    assert len(data["orders_per_minute"]["orders"]) == 60
    assert sum(data["orders_per_minute"]["orders"]) > 0, "the load just ran: its orders are in the last hour"
    assert data["failed_records"]["count"] >= 0
    assert data["freshness"]["age_seconds"] >= 0
    assert data["raw_freshness"]["age_seconds"] is not None


def assert_one_moment(body: dict) -> None:
    """The identities of one refresh: every card counts the same orders (issue 22, item 3)."""
    data = {name: p["data"] for name, p in body["panels"].items()}
    total, headline = Decimal(data["total"]["total_sales"]), data["headline"]
    cent = Decimal("0.01")
    for dimension in ("by_category", "by_channel", "by_region"):
        summed = sum(Decimal(str(r["total_sales"])) for r in data[dimension])
        assert abs(summed - total) <= cent * len(data[dimension]), (dimension, summed, total)
        assert sum(r["orders"] for r in data[dimension]) == data["total"]["orders"], dimension
    top = data["top_products"]
    assert sum(Decimal(str(r["total_sales"])) for r in top) <= total + cent * len(top)
    if data["total"]["products"] <= len(top):  # every product is on the chart: they sum to the total
        assert abs(sum(Decimal(str(r["total_sales"])) for r in top) - total) <= cent * len(top)
    today, last_hour = Decimal(headline["sales_today"]), Decimal(headline["sales_last_hour"])
    assert total >= today and total >= last_hour, (total, today, last_hour)
    assert headline["live_orders"] >= data["total"]["orders"] >= headline["orders_today"]
    generated = datetime.fromisoformat(body["generated_at"])
    if generated.hour >= 1:  # the last 60 minutes lie within today
        assert today >= last_hour and headline["orders_today"] >= headline["orders_last_hour"]
    per_minute = data["orders_per_minute"]
    assert abs(Decimal(str(sum(per_minute["sales"]))) - last_hour) <= cent * 60, (per_minute, last_hour)
    assert sum(per_minute["orders"]) >= headline["orders_last_hour"]
    # Who ordered in the last hour: at most one customer per live order created in it.
    assert 0 <= headline["customers_last_hour"] <= sum(per_minute["orders"])


def test_every_refresh_during_a_live_load_agrees_with_itself(pipeline: tuple[Settings, SqlEngine]) -> None:
    """While orders stream in (each refresh sees a different tail), the cards of one refresh still
    agree: all time ≥ today ≥ last hour, the dimensions and the per-minute chart sum to their card.

    Refreshes run back to back while the load runs (~6 s of changes at 40/s), so about as many
    seconds are spent inside a refresh while deliveries land as with 10 s of load and a pause
    between refreshes: it is a delivery landing between two panels' reads that this catches."""
    settings, engine = pipeline
    load = threading.Thread(target=run_load, args=(settings,), kwargs={"orders": 80, "rate": 40, "seed": 22})
    load.start()
    totals = []
    try:
        while load.is_alive() or len(totals) < 3:
            body = collect_metrics(settings, engine)
            assert {p["status"] for p in body["panels"].values()} == {"ok"}, body["panels"]
            assert_one_moment(body)
            totals.append(body["panels"]["total"]["data"]["total_sales"])
        wait_delivered(settings, timeout=120, poll=0.1)
        final = collect_metrics(settings, engine)
        assert_one_moment(final)
        totals.append(final["panels"]["total"]["data"]["total_sales"])
    finally:
        load.join()
    assert len(set(totals)) > 1, f"the load never showed: {totals}"
    assert Decimal(totals[-1]) == named_total(engine)


def test_page_and_assets_come_from_our_server(local_stack: Settings) -> None:
    with TestClient(create_app(local_stack), base_url="http://127.0.0.1:8050") as client:
        page = client.get("/")
        script = client.get("/static/dashboard.js")
        plotly = client.get("/static/plotly.min.js")
    assert page.status_code == 200
    assert 'data-testid="total-sales"' in page.text
    assert "http" not in page.text.split("<body>")[0], "no CDN: everything loads from our server"
    assert script.status_code == 200 and "/api/metrics" in script.text
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000


def test_panels_on_missing_tables_say_no_data_yet(local_stack: Settings) -> None:
    """A catalogue where nothing was crawled or compacted yet: every SQL panel says so, no 500."""
    empty = replace(local_stack, database="sales_ops_dashboard_empty")
    glue = empty.client("glue")
    if empty.database not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}:
        glue.create_database(DatabaseInput={"Name": empty.database})
    engine = engine_for(empty)
    try:
        panels = collect_metrics(empty, engine)["panels"]
    finally:
        engine.close()
    sql_panels = PANELS - {"failed_records", "raw_freshness"}
    for name in sql_panels:
        assert panels[name]["status"] == "no_data", (name, panels[name])
        assert panels[name]["message"].startswith("no data yet"), panels[name]
    assert panels["failed_records"]["status"] == "ok"

    with TestClient(create_app(empty), base_url="http://127.0.0.1:8050") as client:
        response = client.get("/api/metrics")
    assert response.status_code == 200
    assert response.json()["panels"]["total"]["status"] == "no_data"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sales_ops.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_dashboard_refuses_a_non_loopback_host() -> None:
    result = run_cli("dashboard", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "loopback only" in result.stderr
    assert "Traceback" not in result.stderr


def test_dashboard_says_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("dashboard", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "is taken: pass --port" in result.stderr
    assert "Traceback" not in result.stderr


# --- the page in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard_url(
    pipeline: tuple[Settings, SqlEngine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`sales-ops dashboard` as a user starts it, on a free port; one for the module's page tests
    (each loads the page afresh, and its metrics are cached 2 s only)."""
    settings, _ = pipeline
    port = free_port()
    cmd = [sys.executable, "-m", "sales_ops.cli", "dashboard", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with running_server("sales-ops dashboard", cmd, stack_env(settings), url, log, 60):
        yield url


@pytest.fixture()
def browser(chromium) -> Iterator:
    """The module's Chromium for one test: its console log starts empty, and its page is left for
    a blank one afterwards (an open dashboard page would go on refreshing between tests)."""
    chromium.get_log("browser")  # read entries are gone: only this test's pages are in the log
    try:
        yield chromium
    finally:
        chromium.get("about:blank")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Debian's headless Chromium through its chromedriver (Selenium Manager never downloads),
    started once per module (each test loads its page afresh through `browser`)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
def test_page_shows_the_named_total_and_draws_the_charts(
    pipeline: tuple[Settings, SqlEngine], dashboard_url: str, browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, engine = pipeline
    browser.get(dashboard_url)
    wait = WebDriverWait(browser, 60)
    total = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="total-sales"][data-value]'))
    wait.until(lambda d: total.get_attribute("data-value"))

    expected = named_total(engine)
    assert Decimal(total.get_attribute("data-value")) == expected
    assert Decimal(total.text.replace(",", "")) == expected
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= CHARTS)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) == CHARTS
    assert browser.find_elements(By.CSS_SELECTOR, ".empty") == [], "every panel has data"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors

    # It refreshes itself: the "updated" time moves on without a reload.
    updated = browser.find_element(By.ID, "updated").text
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "updated").text != updated)

    # `SALES_OPS_DASHBOARD_SCREENSHOT=docs/dashboard.png pytest -m browser` refreshes the README's picture.
    if shot := os.environ.get("SALES_OPS_DASHBOARD_SCREENSHOT"):
        Path(shot).write_bytes(full_page_png(browser))


def full_page_png(driver) -> bytes:
    """The whole page at 1400 px wide, not only the window (Chrome DevTools' own capture)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    return base64.b64decode(shot["data"])


# Markup a shopper could type into a product name (issue 23, item 11): Plotly reads tags in labels.
HOSTILE_NAME = (
    '<a href="https://evil.example/">Deal</a><span style="font-size:120px">BIG</span>'
    '<img src=x onerror="window.__injected=1">'
)


@pytest.mark.browser
def test_markup_in_the_data_is_shown_as_text_in_every_chart(
    pipeline: tuple[Settings, SqlEngine], dashboard_url: str, browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings, engine = pipeline
    # The biggest sale of the shop, so that it is among the top products.
    item = order_item(
        "ord-hostile-name",
        product_id={"S": "sku-hostile"},
        product_name={"S": HOSTILE_NAME},
        quantity={"N": "9"},
        unit_price={"N": "99999.00"},
        order_total={"N": "899991.00"},
    )
    settings.client("dynamodb").put_item(TableName=settings.table, Item=item)
    wait_delivered(settings, timeout=120, poll=0.1)
    compact(settings, engine)
    build_rollups(settings, engine)

    browser.get(dashboard_url)
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= CHARTS)
    # Read in one script: the page redraws its charts every refresh (no stale element references).
    texts = "return Array.from(document.querySelectorAll('svg text')).map((t) => t.textContent)"
    wait.until(lambda d: any(HOSTILE_NAME in text for text in d.execute_script(texts)))
    # The name is text: no link, no styled span, no image and no script ran.
    assert browser.find_elements(By.CSS_SELECTOR, 'a[href*="evil.example"], svg a') == []
    assert browser.find_elements(By.CSS_SELECTOR, "img, [style*='120px']") == []
    assert browser.execute_script("return window.__injected === undefined")


def test_a_failing_panel_shows_a_fixed_message_and_logs_the_detail(
    pipeline: tuple[Settings, SqlEngine], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 23, item 12: exception text (S3 URIs, SQL) goes to the server's log, never the page."""
    settings, engine = pipeline
    table = glue.get_table(settings, "inventory_status")
    assert table is not None
    location = table["StorageDescriptor"]["Location"].removeprefix(f"s3://{settings.bucket}/")
    broken = location.rstrip("/") + "/broken-by-hand.parquet"
    s3 = settings.client("s3")
    s3.put_object(Bucket=settings.bucket, Key=broken, Body=b"this is not parquet")
    try:
        with caplog.at_level(logging.WARNING, logger="sales_ops.dashboard.metrics"):
            panels = collect_metrics(settings, engine)["panels"]
    finally:
        s3.delete_object(Bucket=settings.bucket, Key=broken)
    assert panels["inventory"] == {"status": "error", "message": PANEL_ERROR}
    assert panels["top_products"]["status"] == "ok"  # one panel failing blanks no other
    assert "broken-by-hand.parquet" in caplog.text  # the detail, for the operator
    assert collect_metrics(settings, engine)["panels"]["inventory"]["status"] == "ok"


def test_the_customers_panel_is_read_once_per_customer_activity_build(
    pipeline: tuple[Settings, SqlEngine],
) -> None:
    """customer_activity is rebuilt hourly (rollups.HOURLY_ROLLUPS) and read whole by its panel:
    refreshes reuse the panel's read until a newer build exists, which is then read at once."""
    settings, engine = pipeline
    meter, reads = Meter(), RollupReads()
    metered = meter.engine(engine)

    def refresh() -> tuple[dict, int]:
        before = len(meter.statements)
        panels = collect_metrics(settings, metered, reads)["panels"]
        read = [s for s in meter.statements[before:] if s.label == "dashboard_customers"]
        return panels["customers"]["data"], len(read)

    first, first_reads = refresh()
    again, again_reads = refresh()
    assert (first_reads, again_reads) == (1, 0) and again == first

    run_load(settings, orders=20, rate=0, seed=8051)
    wait_delivered(settings, timeout=120, poll=0.1)
    compact(settings, engine)
    stale, stale_reads = refresh()
    assert (stale, stale_reads) == (first, 0), "no newer build: the kept read"
    build_rollup(settings, engine, "customer_activity")
    fresh, fresh_reads = refresh()
    customers = scalar(engine, f"SELECT count(DISTINCT customer_id) FROM {settings.database}.orders_latest")
    assert fresh_reads == 1 and sum(s["customers"] for s in fresh.values()) == customers
    assert sum(s["orders"] for s in fresh.values()) > sum(s["orders"] for s in first.values())
