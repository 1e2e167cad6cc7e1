"""The real webserver loads workspace.yaml and serves our assets over GraphQL."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from sales_ops.curated.rollups import ROLLUPS
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import Settings
from tests.harness import ROOT, free_port, running_server, stack_env

QUERY = """
{
  assetNodes {
    assetKey { path }
    isObservable
    owners { ... on TeamAssetOwner { team } }
    metadataEntries {
      label
      ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
      ... on TextMetadataEntry { text }
    }
  }
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name sensors { name } schedules { name } } }
  }
}
"""


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


@pytest.fixture(scope="module")
def webserver(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("webserver")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    cmd = [sys.executable, "-m", "dagster_webserver", "-w", str(ROOT / "workspace.yaml")]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    base = f"http://127.0.0.1:{port}"
    env = {**stack_env(local_stack), "DAGSTER_HOME": str(home)}
    with running_server("dagster-webserver", cmd, env, f"{base}/server_info", tmp_path / "webserver.log"):
        yield base


def test_webserver_serves_our_assets_sensors_and_schedules(webserver: str) -> None:
    data = _graphql(webserver, QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected = {"order_load", "dynamodb_orders", "raw_orders_files", "raw_orders_table", "orders_latest"}
    assert expected | set(ROLLUPS) <= set(nodes)
    assert nodes["dynamodb_orders"]["isObservable"] and nodes["raw_orders_files"]["isObservable"]
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repo["sensors"]} >= {
        "sales_ops_automation",
        "raw_objects_sensor",
        "processing_failed_sensor",
        "alerts_sensor",
    }
    assert {s["name"] for s in repo["schedules"]} == {"mock_load_every_10_minutes"}


def test_graphql_shows_column_descriptions_table_names_and_owners(webserver: str) -> None:
    nodes = {"/".join(n["assetKey"]["path"]): n for n in _graphql(webserver, QUERY)["assetNodes"]}
    for name in ("orders_latest", *ROLLUPS):
        entries = {e["label"]: e for e in nodes[name]["metadataEntries"]}
        assert entries["dagster/table_name"]["text"] == f"sales_ops.{name}"
        columns = {c["name"]: c for c in entries["dagster/column_schema"]["schema"]["columns"]}
        assert columns and all(c["description"] for c in columns.values()), name
        assert {"team": "sales-ops"} in nodes[name]["owners"]
    latest = {e["label"]: e for e in nodes["orders_latest"]["metadataEntries"]}["dagster/column_schema"]
    described = {c["name"]: c["description"] for c in latest["schema"]["columns"]}
    assert described["order_total"] == COLUMN_DESCRIPTIONS["order_total"]
