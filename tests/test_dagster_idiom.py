"""The code location is loaded the way `dg` projects are (`load_defs` over sales_ops/defs/), so a
new area folder is picked up without editing a list; code references link to the repository when
its URL is known (issue 24, idiom)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import dagster as dg
from sales_ops.definitions import build_definitions, with_repository_links
from tests.harness import ROOT

PROBE = ROOT / "sales_ops" / "defs" / "scaffold_probe"


def test_a_scaffolded_area_is_picked_up_without_a_list() -> None:
    """What `dg scaffold defs dagster.asset …` leaves: a folder with a module defining an asset."""
    PROBE.mkdir()
    try:
        (PROBE / "definitions.py").write_text(
            "import dagster as dg\n\n\n@dg.asset\ndef scaffold_probe_asset() -> None:\n    return None\n"
        )
        code = (
            "from sales_ops.definitions import defs; "
            "print(sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "scaffold_probe_asset" in out.stdout and "orders_latest" in out.stdout
    finally:
        shutil.rmtree(PROBE)


def test_code_references_link_to_the_repository_when_its_url_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALES_OPS_GIT_URL", "git@github.com:acme/sales-ops.git")
    monkeypatch.setenv("SALES_OPS_GIT_REF", "0123abc")
    with dg.instance_for_test():  # loaded inside an instance, as the code server does
        defs = with_repository_links(build_definitions())
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey("orders_latest"))
    (reference,) = spec.metadata["dagster/code_references"].code_references
    assert isinstance(reference, dg.UrlCodeReference)
    assert reference.url.startswith(
        "https://github.com/acme/sales-ops/tree/0123abc/sales_ops/defs/curated/assets.py#L"
    )
