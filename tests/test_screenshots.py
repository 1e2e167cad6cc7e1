"""The README's pictures follow the code: docs/asset-graph.png is taken together with the asset keys
it shows (docs/asset-graph.keys.txt, written by scripts/screenshot_automation.py); when the asset
graph of `sales_ops.definitions` changes, this fails until the picture is taken again."""

from __future__ import annotations

from scripts.screenshot_automation import ASSET_GRAPH_KEYS, asset_graph_lines

REGENERATE = "make screenshots (or: .venv/bin/python scripts/screenshot_automation.py --lineage)"


def recorded_graph() -> list[str]:
    lines = ASSET_GRAPH_KEYS.read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_the_asset_graph_picture_shows_the_current_asset_graph() -> None:
    assert ASSET_GRAPH_KEYS.with_suffix("").with_suffix(".png").exists()
    recorded, current = recorded_graph(), asset_graph_lines()
    added = sorted(set(current) - set(recorded))
    gone = sorted(set(recorded) - set(current))
    assert recorded == current, f"the asset graph changed (new {added}, gone {gone}): {REGENERATE}"
