"""The real `backfill_job` against the emulator: its export takes no writer slot (a compaction can
run meanwhile), only its merge does; and once it is done the reconciliation is requested at once
(issue 24, bugs 3 and 5)."""

from __future__ import annotations

import threading
import time

import pytest
import yaml

import dagster as dg
from sales_ops.backfill.export import latest_export
from sales_ops.definitions import build_definitions
from sales_ops.defs import policies
from sales_ops.defs.catalog.assets import raw_orders_table
from sales_ops.defs.internals import pool_holders
from sales_ops.defs.resources import resources_for
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import Settings
from tests.harness import ROOT

pytestmark = pytest.mark.slow


def requested(result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    return {
        f"{r.key.asset_key.to_user_string()}:{r.key.name}"
        if isinstance(r.key, dg.AssetCheckKey)
        else r.key.to_user_string()
        for r in result.results
        if r.true_subset.size
    }


def test_the_backfill_exports_without_the_writer_slot_then_asks_for_the_reconciliation(
    local_stack: Settings,
) -> None:
    run_load(local_stack, 5, rate=0, seed=241)
    wait_delivered(local_stack, timeout=60)
    pools = yaml.safe_load((ROOT / "dagster" / "dagster.yaml").read_text())["concurrency"]
    with dg.instance_for_test(overrides={"concurrency": pools}) as instance:
        defs = build_definitions(resources_for(local_stack))  # inside the instance's context
        graph = defs.resolve_asset_graph()
        assert dg.AssetKey("orders_backfill") in graph.get(dg.AssetKey("orders_latest")).parent_keys
        assert dg.materialize([raw_orders_table], instance=instance, resources=resources_for(local_stack))
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        previous = latest_export(local_stack)
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(policies.WRITER_POOL)
        # A compaction in progress holds the only writer slot.
        assert storage.claim_concurrency_slot(policies.WRITER_POOL, "compaction", "orders_latest").is_claimed
        outcome: dict = {}
        job = defs.resolve_job_def("backfill_job")
        thread = threading.Thread(
            target=lambda: outcome.update(result=job.execute_in_process(instance=instance)), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 180
        while (latest_export(local_stack) or previous) == previous:
            assert thread.is_alive() and time.monotonic() < deadline, "no export while the slot was held"
            time.sleep(0.5)
        assert pool_holders(instance, policies.WRITER_POOL) == {"compaction"} and thread.is_alive()
        storage.free_concurrency_slots_for_run("compaction")
        thread.join(timeout=300)
        assert outcome["result"].success
        (merged,) = outcome["result"].asset_materializations_for_node("orders_backfill")
        assert merged.metadata["export_items"].value > 0
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
        assert "orders_latest:reconciliation" in requested(after)
        assert "orders_latest" not in requested(after), "the backfill merged: compaction is not re-run"
