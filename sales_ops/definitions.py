"""The Dagster code location: `sales_ops/defs/` loaded the way `dg` projects load it
(`load_defs`: each area's folder, through its `definitions.py`), so what `dg scaffold defs …` adds
is picked up with no list to keep. Loaded by `workspace.yaml`, `dg` ([tool.dg] in pyproject.toml)
and the code servers of `make run` and the aws control plane.
"""

import os
import subprocess
import warnings
from typing import Any

import dagster as dg

# Observable source assets are "beta" in Dagster 1.13; the warning says nothing actionable here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

import sales_ops.defs  # noqa: E402
from sales_ops.settings import PROJECT_ROOT  # noqa: E402

# Steps run in the run's own process: ours are short I/O-bound calls, and a subprocess per step
# (Dagster's default) cost ~5 s each, turning a 10 s refresh into a minute.
EXECUTOR = dg.in_process_executor


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def repository_url() -> str | None:
    """The repository's web URL (`SALES_OPS_GIT_URL`, else the `origin` remote), or None."""
    url = os.environ.get("SALES_OPS_GIT_URL") or _git("config", "--get", "remote.origin.url")
    if url.startswith("git@") and ":" in url:  # git@github.com:owner/repo.git
        host, path = url[len("git@") :].split(":", 1)
        url = f"https://{host}/{path}"
    url = url.removesuffix(".git")
    return url if url.startswith("https://") else None


def with_repository_links(defs: dg.Definitions) -> dg.Definitions:
    """Assets' code references as links into the repository at this commit, when a remote is known
    (local file paths otherwise, which only the machine that loaded them can open)."""
    url = repository_url()
    ref = os.environ.get("SALES_OPS_GIT_REF") or _git("rev-parse", "HEAD")
    if not url or not ref:
        return defs
    mapping = dg.AnchorBasedFilePathMapping(local_file_anchor=PROJECT_ROOT, file_anchor_path_in_repository="")
    linked = dg.link_code_references_to_git(list(defs.assets or []), url, ref, mapping)
    return _replace(defs, assets=linked)


def _replace(defs: dg.Definitions, **changes: Any) -> dg.Definitions:
    """`defs` with some of its parts replaced (Definitions has no public copy-with)."""
    parts = ("assets", "asset_checks", "jobs", "schedules", "sensors", "resources", "executor", "loggers")
    return dg.Definitions(**{**{part: getattr(defs, part) for part in parts}, **changes})


def build_definitions(resources_override: dict[str, Any] | None = None) -> dg.Definitions:
    """Every area with the default resources (from the environment), or the given ones (tests)."""
    loaded = dg.components.load_defs(sales_ops.defs, project_root=PROJECT_ROOT)
    if resources_override:
        loaded = _replace(loaded, resources=resources_override)
    return dg.Definitions.merge(with_repository_links(loaded), dg.Definitions(executor=EXECUTOR))


defs = build_definitions()
