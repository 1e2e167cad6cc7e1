"""Quarantine on what Firehose really writes (gzip, issue 21): only the object that fails on its own
is moved, it is kept outside every prefix the bucket's lifecycle expires, and the rest compacts."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from sales_ops import deploy
from sales_ops.catalog import glue
from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.compaction import compact
from sales_ops.curated.quarantine import QUARANTINE_PREFIX, quarantine_unreadable
from sales_ops.load.shop import run_load
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
from sales_ops.local.progress import wait_delivered
from sales_ops.query import DuckDBEngine
from sales_ops.query.errors import QueryError
from sales_ops.raw_objects import decode_body, is_gzip
from sales_ops.settings import RAW_PREFIX, Settings
from tests.helpers import dynamodb_items, list_keys

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "template.yaml"


def expiring_prefixes() -> list[str]:
    """The prefixes whose current objects the template's lifecycle expires ("" = the whole bucket)."""
    bucket = deploy.read_template(TEMPLATE)["Resources"]["DataBucket"]["Properties"]
    out = []
    for rule in bucket["LifecycleConfiguration"]["Rules"]:
        if rule.get("ExpirationInDays") or rule.get("ExpirationDate"):
            out.append(rule.get("Prefix", rule.get("Filter", {}).get("Prefix", "")))
    return out


def test_no_lifecycle_rule_expires_raw_or_the_quarantine() -> None:
    prefixes = expiring_prefixes()
    assert prefixes, "the template expires errors/ and athena-results/"
    for kept in (RAW_PREFIX, QUARANTINE_PREFIX):
        assert not [p for p in prefixes if kept.startswith(p)], f"{kept} would expire"


def _gzip_lines(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def test_an_athena_bad_data_error_quarantines_only_the_object_that_fails_on_its_own(space: Settings) -> None:
    """Athena names no file: every object of the pass is a candidate, each read gunzipped and judged
    against raw_orders' column types; a good .gz object must not be moved (issue 21: all were)."""
    end_changes = plan_changes(20, *_window(), seed=21)
    summary = write_lines(space, list(raw_lines(end_changes, ChangeStream(seed=21))))
    good = summary.keys
    assert good and all(k.endswith(".gz") for k in good)
    LocalCrawler(space).run()
    partition = good[0].rsplit("/", 1)[0]
    row = json.loads(
        decode_body(
            space.client("s3").get_object(Bucket=space.bucket, Key=good[0])["Body"].read()
        ).splitlines()[0]
    )
    bad = f"{partition}/orders-raw-1-2026-01-01-00-00-00-bad.gz"
    space.client("s3").put_object(
        Bucket=space.bucket, Key=bad, Body=_gzip_lines([row, {**row, "quantity": 2.5}])
    )

    error = QueryError(
        "HIVE_BAD_DATA: Error parsing field value '2.5' for field 9: For input string: \"2.5\""
    )
    moved = quarantine_unreadable(space, error, [*good, bad])

    assert [(q.source, q.key) for q in moved] == [(bad, QUARANTINE_PREFIX + bad)]
    assert "line 2: quantity 2.5 is not a" in moved[0].reason
    assert not [p for p in expiring_prefixes() if moved[0].key.startswith(p)]
    assert sorted(list_keys(space, RAW_PREFIX)) == sorted(good)  # the good ones stay where they were
    kept = space.client("s3").get_object(Bucket=space.bucket, Key=moved[0].key)["Body"].read()
    assert is_gzip(kept) and len(decode_body(kept).splitlines()) == 2  # nothing lost


def test_an_error_no_single_object_explains_moves_nothing(space: Settings) -> None:
    summary = write_lines(
        space, list(raw_lines(plan_changes(10, *_window(), seed=22), ChangeStream(seed=22)))
    )
    glue.ensure_raw_table(space, space.s3_uri(RAW_PREFIX))
    error = QueryError("HIVE_CURSOR_ERROR: Row is not a valid JSON Object - JSONException: timeout")
    assert quarantine_unreadable(space, error, summary.keys) == []
    assert sorted(list_keys(space, RAW_PREFIX)) == sorted(summary.keys)


def test_a_malformed_gzip_object_among_good_ones_is_quarantined_alone_and_the_rest_equals_dynamodb(
    fresh_stack: Settings,
) -> None:
    """The issue's "done when", end to end on the local pipeline (gzip by default)."""
    run_load(fresh_stack, orders=30, rate=0, seed=23)
    wait_delivered(fresh_stack, timeout=120)
    s3 = fresh_stack.client("s3")
    delivered = list_keys(fresh_stack, RAW_PREFIX)
    assert delivered and all(k.endswith(".gz") for k in delivered)
    body = s3.get_object(Bucket=fresh_stack.bucket, Key=delivered[0])["Body"].read()
    corrupt = body[:12] + bytes(64) + body[76:]  # a gzip header, then a damaged deflate stream
    bad = f"{delivered[0].rsplit('/', 1)[0]}/orders-raw-1-2026-01-01-00-00-00-corrupt.gz"
    s3.put_object(Bucket=fresh_stack.bucket, Key=bad, Body=corrupt)

    with DuckDBEngine(fresh_stack) as engine:
        report = compact(fresh_stack, engine)
        assert [q["source"] for q in report.quarantined] == [bad]
        assert "gzip" in report.quarantined[0]["reason"]
        latest = engine.query(
            f"SELECT order_id, status, order_total FROM {fresh_stack.database}.orders_latest"
        ).rows
    assert s3.get_object(Bucket=fresh_stack.bucket, Key=QUARANTINE_PREFIX + bad)["Body"].read() == corrupt
    assert sorted(list_keys(fresh_stack, RAW_PREFIX)) == sorted(delivered)
    table = dynamodb_items(fresh_stack)
    assert {r[0]: (r[1], Decimal(r[2])) for r in latest} == {
        oid: (item["status"], Decimal(item["order_total"])) for oid, item in table.items()
    }


def _window() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return end - timedelta(hours=3), end
