"""Screenshot of an asset's Automation tab (docs/automation-tab.png), or with `--lineage` of the global
asset lineage (docs/asset-graph.png), with headless Chromium.

    .venv/bin/python scripts/screenshot_automation.py [--asset orders_latest] [--out docs/automation-tab.png]
    .venv/bin/python scripts/screenshot_automation.py --lineage

Starts a stack of its own on free ports (never 4566/3000), a mock load, and Dagster as `make run`
does; waits until the automation has materialized the asset, then photographs its Automation tab
and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sales_ops.load.shop import run_load
from sales_ops.local import supervisor
from sales_ops.local.devserver import child_env, dagster_home, dev_children, stop_group
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import LOCAL_HOST, PROJECT_ROOT, Settings

MATERIALIZED = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { timestamp } }
  }
}
"""


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
    args = parser.parse_args(argv)
    page = "asset-graph.png" if args.lineage else "automation-tab.png"
    args.out = args.out or PROJECT_ROOT / "docs" / page
    args.label = args.label or ("Materialized" if args.lineage else "Requested")
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
        env = child_env(settings, dagster_home(settings))
        # The code server, daemon and webserver of `make run` (no dashboard, no load).
        dagster = dev_children(settings, env, port, free_port(), free_port(), rate=0)[:3]
        for child in dagster:
            child.launch(settings)
        deadline = time.monotonic() + args.timeout
        while not materialized(base, args.asset):
            if time.monotonic() > deadline:
                print(f"{args.asset} was not materialized within {args.timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(5)
        time.sleep(40)  # one more automation tick, so the tab shows an evaluation after the run
        if args.lineage:
            screenshot(f"{base}/asset-groups", args.out, args.label, "2400,1100", expand=True)
        else:
            screenshot(f"{base}/assets/{args.asset}?view=automation", args.out, args.label)
        print(f"wrote {args.out}")
        return 0
    finally:
        for child in reversed(dagster):
            if child.proc is not None:
                stop_group(child.proc, 30)
        supervisor.down(settings)


if __name__ == "__main__":
    sys.exit(main())
