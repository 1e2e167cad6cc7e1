"""Athena result reuse (issue 16, defect 14): the dashboard asks for it, with a maximum age no older
than its cache; compaction and the checks never do. The StartQueryExecution requests are recorded
with a botocore hook on the aws Settings' session, run against the emulator's Athena API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sales_ops.catalog import glue
from sales_ops.curated import compaction
from sales_ops.dashboard.app import ATHENA_CACHE_SECONDS, create_app
from sales_ops.quality import checks
from sales_ops.schema import RAW_COLUMNS
from sales_ops.settings import RAW_PREFIX, Settings
from sales_ops.targets import engine_for

pytestmark = pytest.mark.slow


@pytest.fixture()
def aws(space: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """aws Settings on the emulator, for this test's bucket and database, with a raw object to compact."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = Settings(
        target="aws", endpoint_url=space.endpoint_url, bucket=space.bucket, database=space.database,
        workgroup=f"wg-{space.database}", state_dir=tmp_path,
    )  # fmt: skip
    space.client("athena").create_work_group(Name=settings.workgroup, Configuration={})
    columns = [(c.name, sorted(c.raw_types)[0]) for c in RAW_COLUMNS]
    table = glue.json_table_input(
        "raw_orders", columns, space.s3_uri(RAW_PREFIX), list(glue.RAW_PARTITION_KEYS)
    )
    glue.put_table(space, table)
    key = f"{RAW_PREFIX}dt=2026-01-02/hour=03/orders-1.json"
    space.client("s3").put_object(Bucket=space.bucket, Key=key, Body=b'{"order_id": "o-1"}\n')
    yield settings


def record_queries(settings: Settings) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    settings._session.events.register("before-parameter-build.athena.StartQueryExecution", record)
    return requests


def test_the_dashboard_reuses_results_and_compaction_and_checks_do_not(aws: Settings) -> None:
    requests = record_queries(aws)
    with TestClient(create_app(aws), base_url="http://127.0.0.1:8050") as client:
        assert client.get("/api/metrics").status_code == 200  # panels may fail: no rows on the emulator
    dashboard, requests[:] = list(requests), []
    # dashboard_live and the inventory panel (the customers panel reads a build by version: none here)
    assert len(dashboard) >= 2, dashboard
    minutes = int(ATHENA_CACHE_SECONDS // 60)
    assert minutes == 5
    for request in dashboard:
        reuse = request.get("ResultReuseConfiguration")
        assert reuse == {"ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": minutes}}, (
            request
        )

    engine = engine_for(aws)
    for name, path in (
        ("compaction", lambda: compaction.compact(aws, engine)),
        ("checks", lambda: checks.run_checks(aws, engine)),
    ):
        requests[:] = []
        with contextlib.suppress(Exception):  # the emulator's Athena returns no rows: it may stop early
            path()
        assert requests, f"{name} sent no query"
        assert [r for r in requests if "ResultReuseConfiguration" in r] == [], name
    engine.close()


def test_a_dashboard_cache_under_a_minute_asks_for_no_reuse(aws: Settings) -> None:
    requests = record_queries(aws)
    with TestClient(create_app(aws, cache_seconds=30), base_url="http://127.0.0.1:8050") as client:
        assert client.get("/api/metrics").status_code == 200
    assert requests and [r for r in requests if "ResultReuseConfiguration" in r] == []
