"""Screenshot of an asset's Automation tab (docs/automation-tab.png), or with `--lineage` of the global
asset lineage (docs/asset-graph.png, and its asset keys in docs/asset-graph.keys.txt), with headless
Chromium; `--all` (`make screenshots`) takes both and then the dashboard (docs/dashboard.png).

    .venv/bin/python scripts/screenshot_automation.py [--asset orders_latest] [--out docs/automation-tab.png]
    .venv/bin/python scripts/screenshot_automation.py --lineage
    .venv/bin/python scripts/screenshot_automation.py --all

Starts a stack of its own on free ports (never 4566/3000), a mock load, and Dagster as `make run`
does; waits until the automation has materialized the asset, then photographs its Automation tab
and stops everything it started. tests/test_screenshots.py fails when the asset graph no longer
matches the keys recorded beside its picture.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sales_ops.load.shop import run_load
from sales_ops.local import supervisor
from sales_ops.local.devserver import cancel_orphaned_runs, child_env, dagster_home, dev_children, stop_group
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import CADENCE_ENV, LOCAL_HOST, PROJECT_ROOT, Settings

DOCS = PROJECT_ROOT / "docs"
ASSET_GRAPH_KEYS = DOCS / "asset-graph.keys.txt"

MATERIALIZED = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { timestamp } }
  }
}
"""


def asset_graph_lines() -> list[str]:
    """One line per asset of the code location, `key <- upstream, ...`, sorted: what the lineage
    picture shows, in a form a test can compare."""
    from sales_ops.definitions import defs

    graph = defs.resolve_asset_graph()
    lines = []
    for key in graph.get_all_asset_keys():
        parents = sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        lines.append(key.to_user_string() + (f" <- {', '.join(parents)}" if parents else ""))
    return sorted(lines)


def write_asset_graph_keys(path: Path = ASSET_GRAPH_KEYS) -> None:
    header = "# the asset graph shown in asset-graph.png (scripts/screenshot_automation.py --lineage)\n"
    path.write_text(header + "\n".join(asset_graph_lines()) + "\n")


def shoot_dashboard(out: Path) -> None:
    """The dashboard picture is taken by its browser test, on a stack of the test's own."""
    test = "tests/test_dashboard.py::test_page_shows_the_named_total_and_draws_the_charts"
    env = {**os.environ, "SALES_OPS_DASHBOARD_SCREENSHOT": str(out)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def materialized(base: str, asset: str) -> bool:
    body = json.dumps({"query": MATERIALIZED, "variables": {"path": [asset]}}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.load(response)["data"]["assetOrError"]
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return bool(data and data.get("assetMaterializations"))


def screenshot(url: str, out: Path, label: str, size: str = "1500,1000", expand: bool = False) -> None:
    """Open the page, wait for `label` (e.g. an evaluation result), and shoot. With `expand`, first
    unfold every asset group of the lineage graph (the UI's Alt+E) and wait for `label` then."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={size}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        # The asset page loads its definition first, then the tab's evaluations (GraphQL round
        # trips): reload until the label shows, then shoot.
        first = "curated" if expand else label  # the collapsed graph shows group names only
        for _ in range(6):
            driver.get(url)
            try:
                WebDriverWait(driver, 60, poll_frequency=1).until(lambda d: first in d.page_source)
                if expand:
                    time.sleep(3)
                    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
                    WebDriverWait(driver, 60, poll_frequency=1).until(lambda d: label in d.page_source)
                break
            except TimeoutException:
                continue
        time.sleep(5)
        driver.save_screenshot(str(out))
        if label not in driver.page_source:
            raise RuntimeError(f"the page never showed {label!r}; see {out}")
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--asset", default="orders_latest")
    parser.add_argument("--out", type=Path, help="default docs/automation-tab.png (docs/asset-graph.png)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--label", help="text to wait for (default Requested; lineage: Materialized)")
    parser.add_argument("--lineage", action="store_true", help="the global asset lineage instead")
    parser.add_argument("--all", action="store_true", help="lineage, automation tab and dashboard, in docs/")
    args = parser.parse_args(argv)
    if args.all and (args.out or args.label):
        parser.error("--all writes the docs/ pictures: no --out or --label")
    shots = {
        "lineage": (DOCS / "asset-graph.png", args.label or "Materialized"),
        "automation": (DOCS / "automation-tab.png", args.label or "Requested"),
    }
    wanted = ["lineage", "automation"] if args.all else ["lineage" if args.lineage else "automation"]
    if args.out:
        shots[wanted[0]] = (args.out, shots[wanted[0]][1])
    code = shoot_dagster(args.asset, args.timeout, {name: shots[name] for name in wanted})
    if code == 0 and args.all:
        shoot_dashboard(DOCS / "dashboard.png")
        print(f"wrote {DOCS / 'dashboard.png'}")
    return code


def shoot_dagster(asset: str, timeout: float, shots: dict[str, tuple[Path, str]]) -> int:
    """On a private stack with make run's Dagster, once `asset` is materialized: each wanted picture."""
    state = Path(tempfile.mkdtemp(prefix="sales-ops-screenshot-"))
    env = {"SALES_OPS_ENDPOINT": f"http://{LOCAL_HOST}:{free_port()}", "SALES_OPS_STATE_DIR": str(state)}
    settings = Settings.from_env("local", env=env)
    port = free_port()
    base = f"http://{LOCAL_HOST}:{port}"
    supervisor.up(settings)
    dagster = []
    try:
        run_load(settings, 60, rate=0, seed=13)
        wait_delivered(settings, timeout=120)
        os.environ[CADENCE_ENV] = "1"  # compaction at the next minute, not within 5
        home = dagster_home(settings)
        # Opening the instance once creates its SQLite storage, as make run does before its children:
        # a daemon and a webserver creating it at the same moment can race on its migrations.
        cancel_orphaned_runs(home)
        env = child_env(settings, home)
        # The code server, daemon and webserver of `make run` (no dashboard, no load), restarted as
        # make run restarts them.
        dagster = dev_children(settings, env, port, free_port(), free_port(), rate=0)[:3]
        for child in dagster:
            child.launch(settings)
        deadline = time.monotonic() + timeout
        while not materialized(base, asset):
            if time.monotonic() > deadline:
                print(f"{asset} was not materialized within {timeout:.0f}s", file=sys.stderr)
                return 1
            for child in dagster:
                child.restart_if_dead(settings)
            time.sleep(5)
        time.sleep(40)  # one more automation tick, so the tab shows an evaluation after the run
        if "lineage" in shots:
            out, label = shots["lineage"]
            screenshot(f"{base}/asset-groups", out, label, "2400,1100", expand=True)
            write_asset_graph_keys(out.with_suffix(".keys.txt"))
            print(f"wrote {out} and {out.with_suffix('.keys.txt')}")
        if "automation" in shots:
            out, label = shots["automation"]
            screenshot(f"{base}/assets/{asset}?view=automation", out, label)
            print(f"wrote {out}")
        return 0
    finally:
        for child in reversed(dagster):
            if child.proc is not None:
                stop_group(child.proc, 30)
        supervisor.down(settings)


if __name__ == "__main__":
    sys.exit(main())
