"""The Dagster definitions: what the code location holds (policies, metadata), the load schedule, and
the assets materialized with `materialize` against the real emulator."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from sales_ops.catalog import glue
from sales_ops.curated.rollups import ROLLUP_COLUMNS, ROLLUPS
from sales_ops.definitions import build_definitions, defs
from sales_ops.defs import policies
from sales_ops.defs.catalog.assets import raw_orders_table
from sales_ops.defs.curated.assets import PRODUCT_ROLLUP, orders_latest, rollup_assets
from sales_ops.defs.ingest.load import load_schedule, order_load
from sales_ops.defs.ingest.sources import dynamodb_orders, raw_orders_files
from sales_ops.defs.resources import resources_for
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import RAW_PREFIX, Settings

ASSETS = {"order_load", "dynamodb_orders", "raw_orders_files", "raw_orders_table", "orders_latest", *ROLLUPS}
ASSETS |= {"dynamodb_export", "orders_backfill"}
CHECKS = {
    ("raw_orders_table", "raw_schema"),
    ("raw_orders_files", "no_processing_failed"),
    ("raw_orders_files", "no_quarantined_objects"),
    ("raw_orders_files", "freshness"),
    ("orders_latest", "unique_order_id"),
    ("orders_latest", "amounts"),
    ("orders_latest", "rejected_changes"),
    ("orders_latest", "reconciliation"),
}


WRITERS = {"raw_orders_table", "orders_latest", *ROLLUPS}
CURATED = {"orders_latest", *ROLLUPS}


def test_code_location_holds_every_asset_check_job_sensor_and_schedule() -> None:
    repo = defs.get_repository_def()
    assert {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()} == ASSETS
    checks = {(key.asset_key.to_user_string(), key.name) for key in repo.asset_graph.asset_check_keys}
    assert checks == CHECKS
    # The refresh job and the crawl/compaction schedules are replaced by declarative automation.
    assert set(repo.job_names) == {
        "__ASSET_JOB",
        "load_job",
        "quality_job",
        "processing_failed_job",
        "backfill_job",
    }
    sensors = {s.name: s.default_status for s in repo.sensor_defs}
    assert sensors == {
        "sales_ops_automation": dg.DefaultSensorStatus.RUNNING,
        "raw_objects_sensor": dg.DefaultSensorStatus.RUNNING,
        "processing_failed_sensor": dg.DefaultSensorStatus.RUNNING,
        "run_failure_recorder": dg.DefaultSensorStatus.RUNNING,
        "alerts_sensor": dg.DefaultSensorStatus.RUNNING,
        "reconciliation_failures_sensor": dg.DefaultSensorStatus.STOPPED,  # backfill automation: off
    }
    assert [s.name for s in repo.schedule_defs] == ["mock_load_every_10_minutes"]
    automation = repo.get_sensor_def("sales_ops_automation")
    assert automation.run_tags == {"dagster/max_runtime": str(policies.MAX_RUNTIME_S)}


def test_lineage_runs_from_the_load_to_the_rollups() -> None:
    graph = defs.get_repository_def().asset_graph
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["dynamodb_orders"] == {"order_load"}
    assert parents["raw_orders_files"] == {"dynamodb_orders"}
    assert parents["raw_orders_table"] == {"raw_orders_files"}
    assert parents["orders_latest"] == {"raw_orders_table", "raw_orders_files", "orders_backfill"}
    assert parents["orders_backfill"] == {"dynamodb_export", "raw_orders_table"}
    assert all(parents[name] == {"orders_latest"} for name in ROLLUPS)


def test_writers_share_a_pool_retry_with_backoff_and_curated_tables_have_freshness() -> None:
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node, name = graph.get(key), key.to_user_string()
        assets_def = graph.assets_def_for_key(key)
        if name in WRITERS:
            assert assets_def.get_op_def_for_asset_key(key).pool == policies.WRITER_POOL, name
            policy = assets_def.op.retry_policy
            assert policy.max_retries == 3 and policy.backoff == dg.Backoff.EXPONENTIAL, name
            assert node.automation_condition is not None, name
        if name in CURATED:
            assert node.freshness_policy == policies.CURATED_FRESHNESS, name
        if name != "order_load":
            assert node.owners == policies.OWNERS, name


def test_curated_tables_carry_schema_descriptions_and_name_before_any_run() -> None:
    graph = defs.get_repository_def().asset_graph
    tables = {"raw_orders_table": "raw_orders", **{name: name for name in CURATED}}
    for name, table in tables.items():
        metadata = graph.get(dg.AssetKey(name)).metadata
        assert metadata["dagster/table_name"] == f"sales_ops.{table}"
        columns = {c.name: c for c in metadata["dagster/column_schema"].columns}
        assert columns and all(c.description for c in columns.values()), name
        if name == "orders_latest":
            assert columns["status"].description == COLUMN_DESCRIPTIONS["status"]
            assert "order_date" in columns
    # Links to the source code, shown on each asset's page.
    code = graph.get(dg.AssetKey("orders_latest")).metadata["dagster/code_references"]
    assert any("defs/curated/assets.py" in ref.file_path for ref in code.code_references)


def test_load_schedule_evaluates_to_a_load_run_and_is_off() -> None:
    assert (load_schedule.cron_schedule, load_schedule.default_status) == (
        "*/10 * * * *",
        dg.DefaultScheduleStatus.STOPPED,
    )
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
        )
        result = load_schedule.evaluate_tick(context)
    (request,) = result.run_requests
    assert request.run_config["ops"]["order_load"]["config"]["orders"] == 200
    dg.validate_run_config(defs.resolve_job_def("load_job"), request.run_config)


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
        # Rows land in the base (a first build, a fold) or in a delta (merge-on-read), by timing.
        assert latest["rows"] + latest["delta_rows"] > 0 and latest["bytes_written"] > 0
        assert latest["watermark_after"] != "None"
        for name in ROLLUPS:
            assert _metadata(built, name)["rows"] >= 0
            # The declared columns (shown before the first build) are what a build registers.
            table = glue.get_table(local_stack, name)
            assert glue.table_columns(table) == [(c, t) for c, t, _ in ROLLUP_COLUMNS[name]], name
            assert all(c.get("Comment") for c in table["StorageDescriptor"]["Columns"]), name
        # The contract's descriptions are the Glue column comments of the curated table.
        latest_table = glue.get_table(local_stack, "orders_latest")
        comments = {c["Name"]: c.get("Comment") for c in latest_table["StorageDescriptor"]["Columns"]}
        assert comments["order_total"] == COLUMN_DESCRIPTIONS["order_total"]
        top = _metadata(built, PRODUCT_ROLLUP)["top_products"]
        assert top.startswith("| product_name") and top.count("\n") >= 2

        # Nothing new: compaction is incremental and rewrites nothing.
        again = dg.materialize([orders_latest], instance=instance, resources=resources)
        assert _metadata(again, "orders_latest")["partitions_rewritten"] == 0


def test_observing_the_sources_reads_counts_and_lag_without_launching_anything(local_stack: Settings) -> None:
    run_load(local_stack, 10, rate=0, seed=8)
    wait_delivered(local_stack, timeout=60)
    with dg.instance_for_test() as instance:
        # What the UI's "Observe sources" launches: the asset job over the observable sources.
        job = build_definitions(resources_for(local_stack)).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance, asset_selection=[dynamodb_orders.key, raw_orders_files.key]
        )
    assert result.success
    observed = {e.asset_key.to_user_string(): e for e in result.get_asset_observation_events()}
    assert set(observed) == {"dynamodb_orders", "raw_orders_files"}
    ddb = observed["dynamodb_orders"].event_specific_data.asset_observation.metadata
    # Locally a COUNT scan is cheap and exact; the aws implementation reads DescribeTable instead.
    assert ddb["items"].value > 0 and ddb["items_approximate"].value is False and "stream_lag_s" in ddb
    files = observed["raw_orders_files"].event_specific_data.asset_observation
    assert files.metadata["objects"].value > 0 and files.metadata["bytes"].value > 0
    # The data version is the newest key, as the raw-objects sensor reports it.
    pages = local_stack.client("s3").get_paginator("list_objects_v2")
    keys = [
        o["Key"] for p in pages.paginate(Bucket=local_stack.bucket, Prefix=RAW_PREFIX) for o in p["Contents"]
    ]
    assert files.tags["dagster/data_version"] == max(keys)
