"""The Dagster definitions: what the code location holds, schedule evaluation, and the assets
materialized with `materialize` against the real emulator."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from sales_ops.curated.rollups import ROLLUPS
from sales_ops.definitions import build_definitions, defs
from sales_ops.defs.catalog import raw_orders_table
from sales_ops.defs.curated import PRODUCT_ROLLUP, orders_latest, rollup_assets
from sales_ops.defs.load import order_load
from sales_ops.defs.resources import resources_for
from sales_ops.defs.schedules import compaction_schedule, crawl_schedule, load_schedule
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import Settings

ASSETS = {"order_load", "dynamodb_orders", "raw_orders_files", "raw_orders_table", "orders_latest", *ROLLUPS}
CHECKS = {
    ("raw_orders_table", "raw_schema"),
    ("raw_orders_files", "no_processing_failed"),
    ("raw_orders_files", "freshness"),
    ("orders_latest", "unique_order_id"),
    ("orders_latest", "amounts"),
    ("orders_latest", "reconciliation"),
}


def test_code_location_holds_every_asset_check_job_sensor_and_schedule() -> None:
    repo = defs.get_repository_def()
    assert {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()} == ASSETS
    checks = {(key.asset_key.to_user_string(), key.name) for key in repo.asset_graph.asset_check_keys}
    assert checks == CHECKS
    assert {"load_job", "crawl_job", "compaction_job", "refresh_job", "quality_job"} <= set(repo.job_names)
    sensors = {s.name: s.default_status for s in repo.sensor_defs}
    assert sensors == {
        "raw_objects_sensor": dg.DefaultSensorStatus.RUNNING,
        "processing_failed_sensor": dg.DefaultSensorStatus.RUNNING,
        "run_failure_recorder": dg.DefaultSensorStatus.RUNNING,
    }


def test_lineage_runs_from_the_load_to_the_rollups() -> None:
    graph = defs.get_repository_def().asset_graph
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["dynamodb_orders"] == {"order_load"}
    assert parents["raw_orders_files"] == {"dynamodb_orders"}
    assert parents["raw_orders_table"] == {"raw_orders_files"}
    assert parents["orders_latest"] == {"raw_orders_table"}
    assert all(parents[name] == {"orders_latest"} for name in ROLLUPS)


@pytest.mark.parametrize(
    ("schedule", "job", "cron", "status"),
    [
        (crawl_schedule, "crawl_job", "*/15 * * * *", dg.DefaultScheduleStatus.STOPPED),
        (compaction_schedule, "compaction_job", "5 * * * *", dg.DefaultScheduleStatus.RUNNING),
        (load_schedule, "load_job", "*/10 * * * *", dg.DefaultScheduleStatus.STOPPED),
    ],
)
def test_schedules_evaluate_to_a_run_of_their_job(schedule, job: str, cron: str, status) -> None:
    assert (schedule.cron_schedule, schedule.default_status) == (cron, status)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
        )
        result = schedule.evaluate_tick(context)
    assert len(result.run_requests) == 1
    assert schedule.job_name == job
    # Each tick's run config is valid for its job (the load schedule sets a batch size).
    assert defs.resolve_job_def(job).run_config_schema.config_type
    run_config = result.run_requests[0].run_config
    if job == "load_job":
        assert run_config["ops"]["order_load"]["config"]["orders"] == 200
    dg.validate_run_config(defs.resolve_job_def(job), run_config)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {key: getattr(value, "value", value) for key, value in event.materialization.metadata.items()}


def test_materialize_load_crawl_compaction_and_rollups(local_stack: Settings) -> None:
    resources = resources_for(local_stack)
    with dg.instance_for_test() as instance:
        loaded = dg.materialize(
            [order_load],
            instance=instance,
            resources=resources,
            run_config={
                "ops": {
                    "order_load": {"config": {"orders": 25, "rate": 0, "seed": 7, "wait_delivered": True}}
                }
            },
        )
        load_meta = _metadata(loaded, "order_load")
        assert load_meta["orders"] == 25 and load_meta["changes"] >= 25 and "delivered_after_s" in load_meta

        built = dg.materialize(
            [raw_orders_table, orders_latest, *rollup_assets], instance=instance, resources=resources
        )
        crawl = _metadata(built, "raw_orders_table")
        assert crawl["partitions"] >= 1
        assert "order_id" in [c.name for c in crawl["dagster/column_schema"].columns]
        latest = _metadata(built, "orders_latest")
        assert latest["rows"] > 0 and latest["bytes_written"] > 0
        assert latest["watermark_after"] != "None"
        for name in ROLLUPS:
            assert _metadata(built, name)["rows"] >= 0
        top = _metadata(built, PRODUCT_ROLLUP)["top_products"]
        assert top.startswith("| product_name") and top.count("\n") >= 2

        # Nothing new: compaction is incremental and rewrites nothing.
        again = dg.materialize([orders_latest], instance=instance, resources=resources)
        assert _metadata(again, "orders_latest")["partitions_rewritten"] == 0


def test_refresh_job_observes_sources_and_runs_checks(local_stack: Settings) -> None:
    run_load(local_stack, 10, rate=0, seed=8)
    wait_delivered(local_stack, timeout=60)
    # Resolved inside the instance context: Dagster looks up its defs-state storage there.
    with dg.instance_for_test() as instance:
        job = build_definitions(resources_for(local_stack)).resolve_job_def("refresh_job")
        result = job.execute_in_process(instance=instance)
    assert result.success
    observed = {e.asset_key.to_user_string(): e for e in result.get_asset_observation_events()}
    assert set(observed) == {"dynamodb_orders", "raw_orders_files"}
    ddb = observed["dynamodb_orders"].event_specific_data.asset_observation.metadata
    assert ddb["items"].value > 0 and "stream_lag_s" in ddb
    files = observed["raw_orders_files"].event_specific_data.asset_observation.metadata
    assert files["objects"].value > 0 and files["bytes"].value > 0 and "newest_object" in files
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {name for _, name in CHECKS}
    # raw_orders exists now: the refresh compacts without crawling (compaction adds the partitions),
    # where a crawl job run always crawls.
    with dg.instance_for_test() as instance:
        defs = build_definitions(resources_for(local_stack))
        again = defs.resolve_job_def("refresh_job").execute_in_process(instance=instance)
        crawled = defs.resolve_job_def("crawl_job").execute_in_process(instance=instance)
    assert again.success and _metadata(again, "raw_orders_table")["crawled"] is False
    assert _metadata(crawled, "raw_orders_table")["crawled"] is True
