"""The local crawler: raw_orders from the handler's JSON lines, incrementally, never losing a column."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sales_ops.catalog.crawlers import CrawlerError, LocalCrawler, _CrawlerRun
from sales_ops.catalog.glue import get_table, list_partitions, table_columns
from sales_ops.catalog.inference import hive_type, infer_type, merge_types
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
from sales_ops.schema import RAW_COLUMNS
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings
from sales_ops.targets import crawler_for

END = datetime(2026, 3, 1, tzinfo=UTC)
CHANGES = plan_changes(150, END - timedelta(hours=10), END, seed=11, keys_only_deletes=0.5)
# The contract (sales_ops.schema) names the columns and their order; how the crawler types the
# handler's JSON is this test's own specification: JSON numbers and booleans by the values seen
# (the generator's quantities are small ints, its prices have cents), everything else a string.
RAW_NAMES = [c.name for c in RAW_COLUMNS]
CRAWLED_TYPES = {"is_deleted": "boolean", "quantity": "int", "unit_price": "double", "order_total": "double"}


def objects_read(settings: Settings) -> int:
    return LocalCrawler(settings).get_crawler_metrics()["CrawlerMetricsList"][0]["ObjectsRead"]


def test_first_crawl_creates_raw_orders_from_the_handler_output(space: Settings) -> None:
    lines = list(raw_lines(CHANGES, ChangeStream(seed=11)))
    written = write_lines(space, lines)
    s3 = space.client("s3")
    # Not data: an error record and files Hive skips.
    s3.put_object(Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/03/01/00/err-1", Body=b'{"errorCode": "x"}\n')
    s3.put_object(Bucket=space.bucket, Key=f"{RAW_PREFIX}dt=2026-02-28/hour=20/_SUCCESS", Body=b"x")

    report = crawler_for(space).run(wait=True)

    assert (report.tables_created, report.tables_updated) == (1, 0)
    partitions = {p for p, _ in lines}
    assert report.partitions_added == len(partitions) == len(list_partitions(space, "raw_orders"))
    columns = dict(report.columns)
    assert list(columns)[: len(RAW_NAMES)] == RAW_NAMES
    assert {n: columns[n] for n in RAW_NAMES} == {n: CRAWLED_TYPES.get(n, "string") for n in RAW_NAMES}
    assert all(columns[c.name] in c.raw_types for c in RAW_COLUMNS)  # what the contract allows
    # extra is JSON text (docs/design.md §2.2), so a string whatever attributes it carries.
    assert any(b'\\"coupon_code\\":' in line for _, line in lines) and columns["extra"] == "string"
    assert list(columns)[-2:] == ["dt", "hour"]
    table = get_table(space, "raw_orders")
    assert table["StorageDescriptor"]["Location"] == space.s3_uri(RAW_PREFIX)
    assert (
        table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
        == "org.openx.data.jsonserde.JsonSerDe"
    )
    assert objects_read(space) == written.objects


def test_later_crawls_read_only_new_objects_and_add_only_new_partitions(space: Settings) -> None:
    lines = list(raw_lines(CHANGES, ChangeStream(seed=11)))
    first_hours = sorted({p for p, _ in lines})[:5]
    write_lines(space, [(p, x) for p, x in lines if p in first_hours])
    crawler = LocalCrawler(space)
    crawler.run()
    assert len(list_partitions(space, "raw_orders")) == 5

    again = crawler.run()
    assert (again.tables_created, again.tables_updated, again.partitions_added) == (0, 0, 0)
    assert again.columns_added == [] and objects_read(space) == 0

    later = write_lines(space, [(p, x) for p, x in lines if p not in first_hours])
    report = crawler.run()
    assert report.partitions_added == len({p for p, _ in lines}) - 5
    assert report.tables_created == 0 and report.columns_added == []
    assert objects_read(space) == later.objects  # each new object once, the old ones not at all


def test_new_columns_are_added_and_missing_ones_kept(space: Settings) -> None:
    lines = list(raw_lines(CHANGES[:50], ChangeStream(seed=11)))
    write_lines(space, lines)
    crawler = LocalCrawler(space)
    before = crawler.run().columns

    # A new handler version adds a top-level field and stops sending `region`.
    event = json.loads(lines[-1][1])
    event.pop("region")
    event["loyalty_tier"] = "gold"
    key = f"{RAW_PREFIX}dt=2026-03-02/hour=00/orders-raw-1-2026-03-02-00-00-01-{uuid.uuid4()}"
    space.client("s3").put_object(Bucket=space.bucket, Key=key, Body=(json.dumps(event) + "\n").encode())
    report = crawler.run()

    assert report.columns_added == ["loyalty_tier"]
    assert report.tables_updated == 1 and report.partitions_added == 1
    names = [name for name, _ in table_columns(get_table(space, "raw_orders"))]
    assert "region" in names and names[-1] == "loyalty_tier"
    assert [c for c in report.columns if c[0] != "loyalty_tier"] == before


def test_extra_written_as_an_object_before_becomes_a_string_column(space: Settings) -> None:
    """A lake written before extra was JSON text (an object: a struct column) is string after the
    first crawl of new data, and DuckDB reads the old objects as their JSON text."""
    from sales_ops.query.duckdb import DuckDBEngine

    lines = list(raw_lines(CHANGES[:40], ChangeStream(seed=11)))
    hours = sorted({p for p, _ in lines})
    old = []
    for part, line in lines:
        if part == hours[0]:
            event = json.loads(line)
            event["extra"] = {"coupon_code": "OLD-1", "Gift.Wrap": True}  # how the handler wrote it
            old.append((part, (json.dumps(event) + "\n").encode()))
    write_lines(space, old)
    crawler = LocalCrawler(space)
    assert dict(crawler.run().columns)["extra"].startswith("struct<coupon_code:string,")

    write_lines(space, [(p, x) for p, x in lines if p != hours[0]])
    report = crawler.run()
    assert report.tables_updated == 1 and dict(report.columns)["extra"] == "string"
    with DuckDBEngine(space) as engine:
        rows = engine.query(
            f"SELECT 'dt=' || dt || '/hour=' || hour AS part, extra, "
            f"json_extract_scalar(extra, '$.coupon_code') AS coupon FROM {space.database}.raw_orders"
        ).as_dicts()
    old_rows = [r for r in rows if r["part"] == hours[0]]
    assert len(old_rows) == len(old) and len(rows) == len(lines)
    assert all(json.loads(r["extra"]) == {"coupon_code": "OLD-1", "Gift.Wrap": True} for r in old_rows)
    assert {r["coupon"] for r in old_rows} == {"OLD-1"}
    assert all(isinstance(json.loads(r["extra"]), dict) for r in rows)


def test_a_running_crawl_is_waited_for(space: Settings) -> None:
    write_lines(space, list(raw_lines(CHANGES[:20], ChangeStream(seed=11))))
    crawler = LocalCrawler(space)
    held, release = threading.Event(), threading.Event()

    def other_crawl() -> None:  # another process's crawl, holding the crawler for a moment
        with LocalCrawler(space)._exclusive() as got:
            assert got
            held.set()
            release.wait(10)

    other = threading.Thread(target=other_crawl)
    other.start()
    held.wait(10)
    assert crawler.get_crawler()["Crawler"]["State"] == "RUNNING"
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    report = crawler.run(wait=True, timeout=30)
    other.join()
    assert time.monotonic() - started >= 0.4  # it waited for the other crawl to end
    assert report.tables_created == 1
    assert crawler.get_crawler()["Crawler"] == {
        "Name": space.crawler,
        "State": "READY",
        "LastCrawl": crawler.get_crawler()["Crawler"]["LastCrawl"],
    }
    assert crawler.get_crawler()["Crawler"]["LastCrawl"]["Status"] == "SUCCEEDED"


def test_type_inference_widens_and_never_fails() -> None:
    assert merge_types(infer_type(1), infer_type(2.5)) == "double"
    assert merge_types(infer_type(1), infer_type(2**40)) == "bigint"
    assert merge_types(infer_type("a"), infer_type(1)) == "string"
    assert merge_types(None, infer_type(True)) == "boolean"
    merged = merge_types(infer_type({"a": 1}), infer_type({"b": {"c": "x"}, "a": None}))
    assert hive_type(merged) == "struct<a:int,b:struct<c:string>>"
    assert hive_type(infer_type({})) == "string"  # nothing to type yet
    assert hive_type(infer_type([1, 2.0])) == "array<double>"


class EventuallyConsistentGlue(_CrawlerRun):
    """Glue's three crawler calls as AWS answers them right after StartCrawler: GetCrawler may say
    READY, with the previous crawl's LastCrawl, for a few polls before the new crawl shows."""

    def __init__(self, settings: Settings, stale_polls: int, show_running: bool, outcome: str) -> None:
        self.settings, self.poll_seconds = settings, 0.0
        self.previous = {"Status": "SUCCEEDED", "StartTime": datetime(2026, 1, 1, tzinfo=UTC)}
        self.stale_polls, self.show_running, self.outcome = stale_polls, show_running, outcome
        self.started = False
        self.polls = 0

    def start_crawler(self) -> None:
        self.started = True

    def get_crawler(self) -> dict:
        crawler = {"Name": "c", "State": "READY", "LastCrawl": self.previous}
        if self.started:
            self.polls += 1
            if self.polls <= self.stale_polls:
                return {"Crawler": crawler}
            if self.show_running and self.polls == self.stale_polls + 1:
                return {"Crawler": {**crawler, "State": "RUNNING"}}
            new = {"Status": self.outcome, "StartTime": datetime.now(UTC), "ErrorMessage": "boom"}
            return {"Crawler": {**crawler, "LastCrawl": new}}
        return {"Crawler": crawler}

    def get_crawler_metrics(self) -> dict:
        return {"CrawlerMetricsList": [{"TablesCreated": 0, "TablesUpdated": 0}]}


@pytest.mark.parametrize("show_running", [True, False])
def test_wait_never_returns_the_previous_crawls_result(space: Settings, show_running: bool) -> None:
    """Defect 9: the previous crawl SUCCEEDED; ours fails. The wait must report ours."""
    glue = EventuallyConsistentGlue(space, stale_polls=3, show_running=show_running, outcome="FAILED")
    with pytest.raises(CrawlerError, match="failed: boom"):
        glue.run(wait=True, timeout=30)
    assert glue.polls > 3  # it went on polling past the stale READY answers
    ok = EventuallyConsistentGlue(space, stale_polls=2, show_running=show_running, outcome="SUCCEEDED")
    assert ok.run(wait=True, timeout=30).state == "SUCCEEDED" and ok.polls > 2
