"""The private Dagster APIs the project relies on (sales_ops/defs/internals.py) still do what it
needs. Fails on any other Dagster version than the one they were checked against: re-check each
use there, then bump VERIFIED_VERSION (issue 24, bug 8)."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import dagster as dg
from sales_ops.defs import internals
from sales_ops.defs.policies import CURATED_FRESHNESS, HOURLY

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_dagster_is_the_one_the_internals_were_checked_against() -> None:
    assert dg.__version__ == internals.VERIFIED_VERSION, (
        f"dagster {dg.__version__}: re-check every use in sales_ops/defs/internals.py, "
        "then bump VERIFIED_VERSION"
    )


def test_no_other_module_imports_a_private_dagster_module() -> None:
    offenders = []
    for path in (ROOT / "sales_ops").rglob("*.py"):
        if path.name == "internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("dagster._")]
    assert offenders == []


def test_the_data_version_tag_is_what_observe_result_writes() -> None:
    @dg.observable_source_asset(name="observed")
    def observed() -> dg.DataVersion:
        return dg.DataVersion("v1")

    with dg.instance_for_test() as instance:
        job = dg.Definitions(assets=[observed]).resolve_implicit_global_asset_job_def()
        job.execute_in_process(instance=instance)
        (record,) = instance.fetch_observations(dg.AssetKey("observed"), limit=1).records
        assert record.asset_observation.tags[internals.DATA_VERSION_TAG] == "v1"


def test_check_history_and_pool_holders_read_the_instance() -> None:
    @dg.asset
    def table() -> None:
        return None

    @dg.asset_check(asset=table)
    def ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    with dg.instance_for_test() as instance:
        for _ in range(2):
            dg.materialize([table, ok], instance=instance)
        history = internals.check_history(instance, ok.check_key, limit=5, done_only=True)
        assert [r.status for r in history] == [internals.CHECK_SUCCEEDED] * 2
        assert history[0].id > history[1].id  # newest first
        storage = instance.event_log_storage
        storage.set_concurrency_slots("pool", 1)
        assert storage.claim_concurrency_slot("pool", "run-1", "step").is_claimed
        assert internals.pool_holders(instance, "pool") == {"run-1"}


def test_the_webserver_app_can_be_wrapped() -> None:
    from dagster_webserver import cli

    original = cli.create_app_from_workspace_process_context
    try:
        internals.guard_webserver_app(lambda app: ("wrapped", app))
        assert cli.create_app_from_workspace_process_context.__name__ == "guarded"
    finally:
        cli.create_app_from_workspace_process_context = original


def test_freshness_warns_with_a_margin_over_the_hourly_backstop() -> None:
    assert HOURLY == "5 * * * *"
    assert (
        CURATED_FRESHNESS.warn_window
        and CURATED_FRESHNESS.warn_window
        > dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1)).fail_window
    )
