"""The code location is loaded the way `dg` projects are (`load_defs` over sales_ops/defs/), so a
new area folder is picked up without editing a list; code references link to the repository when
its URL is known (issue 24, idiom)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dagster as dg
from sales_ops.definitions import build_definitions, with_repository_links
from tests.harness import ROOT


def test_a_scaffolded_area_is_picked_up_without_a_list(tmp_path: Path) -> None:
    """What `dg scaffold defs dagster.asset …` leaves: a folder with a module defining an asset.
    Added to a copy of the package (first on the path), never to the source tree, which other
    test workers load at the same time."""
    shutil.copytree(ROOT / "sales_ops", tmp_path / "sales_ops", ignore=shutil.ignore_patterns("__pycache__"))
    probe = tmp_path / "sales_ops" / "defs" / "scaffold_probe"
    probe.mkdir()
    (probe / "definitions.py").write_text(
        "import dagster as dg\n\n\n@dg.asset\ndef scaffold_probe_asset() -> None:\n    return None\n"
    )
    code = (
        "import sales_ops; from sales_ops.definitions import defs; print(sales_ops.__file__); "
        "print(sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(str(tmp_path)), out.stdout[:300]  # the copy was loaded
    assert "scaffold_probe_asset" in out.stdout and "orders_latest" in out.stdout


def test_code_references_link_to_the_repository_when_its_url_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALES_OPS_GIT_URL", "git@github.com:acme/sales-ops.git")
    monkeypatch.setenv("SALES_OPS_GIT_REF", "0123abc")
    with dg.instance_for_test():  # loaded and resolved inside an instance, as the code server does
        defs = with_repository_links(build_definitions())
        spec = next(s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey("orders_latest"))
    (reference,) = spec.metadata["dagster/code_references"].code_references
    assert isinstance(reference, dg.UrlCodeReference)
    assert reference.url.startswith(
        "https://github.com/acme/sales-ops/tree/0123abc/sales_ops/defs/curated/assets.py#L"
    )
