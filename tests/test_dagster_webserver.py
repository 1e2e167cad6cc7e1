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
    # What `make run` starts: the webserver behind the local guard.
    cmd = [sys.executable, "-m", "sales_ops.local.webserver", "-w", str(ROOT / "workspace.yaml")]
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


def _post(base: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(f"{base}/graphql", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


LAUNCH = json.dumps(
    {
        "query": "mutation($p: ExecutionParams!) "
        "{ launchPipelineExecution(executionParams: $p) { __typename } }",
        "variables": {
            "p": {
                "selector": {
                    "jobName": "load_job",
                    "repositoryName": "__repository__",
                    "repositoryLocationName": "sales_ops",
                }
            }
        },
    }
).encode()


def test_cross_site_requests_and_foreign_hosts_are_refused(webserver: str) -> None:
    """Issue 23, item 9: a web page could launch `order_load` with a text/plain POST."""
    port = webserver.rsplit(":", 1)[1]
    evil = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    assert _post(webserver, evil, LAUNCH) == 403
    assert (
        _post(webserver, {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, LAUNCH) == 403
    )
    rebinding = {"Content-Type": "application/json", "Host": f"evil.example:{port}"}
    assert _post(webserver, rebinding, b'{"query": "{ version }"}') == 403
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(
            urllib.request.Request(webserver, headers={"Host": "evil.example"}), timeout=30
        )
    assert page.value.code == 403
    # The UI itself (same origin) and scripts (no Origin) still work.
    same = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"}
    assert _post(webserver, same, b'{"query": "{ version }"}') == 200
    assert _graphql(webserver, "{ version }")["version"]
