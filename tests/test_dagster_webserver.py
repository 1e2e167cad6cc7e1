"""The real webserver loads workspace.yaml and serves our assets over GraphQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sales_ops.rollups import ROLLUPS
from sales_ops.settings import Settings
from tests.conftest import ROOT, free_port, stack_env

QUERY = """
{
  assetNodes { assetKey { path } isObservable }
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name sensors { name } schedules { name } } }
  }
}
"""


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _wait_up(base: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            _get(f"{base}/server_info")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"dagster-webserver not up within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def webserver(local_stack: Settings, tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    log = tmp_path / "webserver.log"
    cmd = [sys.executable, "-m", "dagster_webserver", "-w", str(ROOT / "workspace.yaml")]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**stack_env(local_stack), "DAGSTER_HOME": str(home)}, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_webserver_serves_our_assets_sensors_and_schedules(webserver: str) -> None:
    data = _graphql(webserver, QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected = {"order_load", "dynamodb_orders", "raw_orders_files", "raw_orders_table", "orders_latest"}
    assert expected | set(ROLLUPS) <= set(nodes)
    assert nodes["dynamodb_orders"]["isObservable"] and nodes["raw_orders_files"]["isObservable"]
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repo["sensors"]} >= {"raw_objects_sensor", "processing_failed_sensor"}
    assert {s["name"] for s in repo["schedules"]} >= {"crawl_every_15_minutes", "compaction_hourly"}
