"""The cost table in docs/deploy-aws.md is what scripts/cost_table.py computes from the template."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cost_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("cost_table", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doc_shows_the_scripts_table() -> None:
    printed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True).stdout
    doc = (ROOT / "docs" / "deploy-aws.md").read_text()
    shown = doc.split("<!-- cost-table:start -->\n", 1)[1].split("\n<!-- cost-table:end -->", 1)[0]
    assert shown == printed.rstrip("\n"), "run `python scripts/cost_table.py --write`"


def test_costs_follow_the_template_and_grow_with_the_rate() -> None:
    cost = _module()
    template = cost.read_template(ROOT / "infra" / "template.yaml")
    params = cost.defaults(template)
    idle, ten, thousand = (cost.monthly(rate, params, template) for rate in cost.RATES)
    assert sum(idle.values()) < sum(ten.values()) < sum(thousand.values())
    # Idle is the shard, the alarms and the hourly rollups' minimum Athena bills: no crawls.
    assert (
        idle["Glue crawler"] == 0
        and idle["Kinesis Data Streams"] == params["KinesisShardCount"] * 730 * 0.015
    )
    two_shards = cost.monthly(0, {**params, "KinesisShardCount": 2}, template)
    assert two_shards["Kinesis Data Streams"] == 2 * idle["Kinesis Data Streams"]
    # The dashboard's Athena bill falls with its cache, as the arithmetic says.
    assert cost.dashboard_month(300) < cost.dashboard_month(30) / 9
