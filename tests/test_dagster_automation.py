"""The control plane against the real emulator: declarative automation (what new raw data asks for,
and that nothing is asked for when nothing is new), the writer pool (a UI materialization during a
refresh waits instead of failing), and a retry that recovers from a held writer lock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

import dagster as dg
from sales_ops.catalog import glue
from sales_ops.curated.lock import LOCK_KEY, CompactionLocked, S3Lock
from sales_ops.curated.rollups import CYCLE_ROLLUPS, HOURLY_ROLLUPS, ROLLUP_LOCK_KEY, ROLLUPS, build_rollup
from sales_ops.definitions import build_definitions
from sales_ops.defs import policies
from sales_ops.defs.catalog.assets import raw_orders_table
from sales_ops.defs.curated.assets import orders_latest, rollup_assets
from sales_ops.defs.ingest.sensors import raw_objects_sensor
from sales_ops.defs.quality.checks import amounts, raw_schema, rejected_changes, unique_order_id
from sales_ops.defs.resources import resources_for
from sales_ops.load.shop import run_load
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import RAW_PREFIX, Settings
from sales_ops.targets import engine_for
from tests.harness import ROOT

pytestmark = pytest.mark.slow

WRITES = {
    "raw_orders_table",
    "orders_latest",
    "sales_by_product_hourly",
    "customer_activity",
    "inventory_status",
}


def requested(result) -> set[str]:
    """Assets and checks (as `asset:check`) the evaluation requested."""
    out = set()
    for r in result.results:
        if r.true_subset.size:
            key = r.key
            out.add(
                f"{key.asset_key.to_user_string()}:{key.name}"
                if isinstance(key, dg.AssetCheckKey)
                else key.to_user_string()
            )
    return out


def newest_raw_key(settings: Settings) -> str | None:
    pages = settings.client("s3").get_paginator("list_objects_v2")
    keys = [
        o["Key"]
        for p in pages.paginate(Bucket=settings.bucket, Prefix=RAW_PREFIX)
        for o in p.get("Contents", [])
    ]
    return max(keys, default=None)


def sensor_tick(settings: Settings, instance: dg.DagsterInstance, cursor: str | None):
    """One tick of the raw-objects sensor; its observations are stored as the daemon stores them."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources_for(settings)) as ctx:
        result = raw_objects_sensor.evaluate_tick(ctx)
    assert result.run_requests == []  # it never launches runs itself
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def test_new_raw_data_requests_compaction_and_rollups_and_nothing_otherwise(local_stack: Settings) -> None:
    resources = resources_for(local_stack)
    with dg.instance_for_test() as instance:
        # Loaded inside the instance's context (components resolve against the current instance: a
        # load outside it can hold a weak reference to an instance already closed).
        defs = build_definitions(resources)
        defs.get_repository_def()
        # Start the sensor after what is already there, as a running deployment would be.
        cursor = newest_raw_key(local_stack)

        def build(assets: list, tags: dict | None = None) -> None:
            assert dg.materialize(assets, instance=instance, resources=resources, tags=tags).success

        # Evaluations one cadence apart (SALES_OPS_CADENCE_MINUTES): compaction and the rollups
        # run at most once per tick of its cron.
        # From the next :15, so that no other cron (15-minute observations, the :05 hourly ones)
        # ticks within the evaluations below.
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now.replace(minute=15) + timedelta(hours=1 if now.minute >= 15 else 0)

        def at(ticks: float) -> datetime:
            return start + timedelta(minutes=policies.CADENCE_MINUTES * ticks)

        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at(0.1))
        assert requested(first) == set(), "nothing observed yet, nothing requested"

        run_load(local_stack, 15, rate=0, seed=131)
        wait_delivered(local_stack, timeout=60)
        tick = sensor_tick(local_stack, instance, cursor)
        (observation,) = tick.asset_events
        assert observation.asset_key == dg.AssetKey("raw_orders_files")
        assert observation.metadata["new_objects"].value >= 1

        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor, evaluation_time=at(1.1)
        )
        # raw_orders is missing in this instance: crawl and compact, with the checks that validate
        # them, in the same tick; the rollups wait for orders_latest's blocking check to pass.
        checks = {"orders_latest:unique_order_id", "orders_latest:amounts", "orders_latest:rejected_changes"}
        checks |= {"raw_orders_table:raw_schema"}
        assert requested(second) == {"raw_orders_table", "orders_latest", *checks}
        build([raw_orders_table, orders_latest, raw_schema, unique_order_id, amounts, rejected_changes])

        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=second.cursor, evaluation_time=at(1.2)
        )
        assert requested(third) == set(ROLLUPS), "every rollup, the hourly ones too: they are missing"
        build(rollup_assets)

        # Nothing new: the sensor skips, and the automation requests nothing.
        idle = sensor_tick(local_stack, instance, tick.cursor)
        assert idle.asset_events == [] and "no new raw objects" in idle.skip_message
        fourth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=third.cursor, evaluation_time=at(1.3)
        )
        assert requested(fourth) == set()

        # New data again: compaction, its checks and the rollups in one run, at the next tick (a
        # failing blocking check would stop the rollups inside it), but no crawl (raw_orders exists;
        # compaction registers the new partitions itself); the reconciliation and the hourly
        # rollups (customer_activity) wait for their hour.
        run_load(local_stack, 5, rate=0, seed=132)
        wait_delivered(local_stack, timeout=60)
        assert sensor_tick(local_stack, instance, tick.cursor).asset_events
        waiting = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=fourth.cursor, evaluation_time=at(1.5)
        )
        assert requested(waiting) == set(), "no tick of the cadence since the last compaction"
        fourth = waiting
        fifth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=fourth.cursor, evaluation_time=at(2.1)
        )
        assert requested(fifth) == {
            "orders_latest",
            "orders_latest:unique_order_id",
            "orders_latest:amounts",
            "orders_latest:rejected_changes",
            *CYCLE_ROLLUPS,
        }

        # A backfill (a run tagged sales_ops/backfill that rebuilt orders_latest) asks for the
        # reconciliation at once, without waiting for the hour.
        build([orders_latest], tags={policies.BACKFILL_TAG: "1"})
        sixth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=fifth.cursor, evaluation_time=at(2.2)
        )
        assert "orders_latest:reconciliation" in requested(sixth)

        # The hour's tick (:05): the hourly rollups, with the reconciliation and the backstop (the
        # backfill above ran without orders_latest's blocking checks, which the rollups wait for).
        build([orders_latest, unique_order_id, amounts, rejected_changes])
        hourly = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=sixth.cursor, evaluation_time=start + timedelta(minutes=51)
        )
        assert set(HOURLY_ROLLUPS) <= requested(hourly), sorted(requested(hourly))


@pytest.fixture(scope="module")
def crawled(local_stack: Settings) -> Settings:
    """Raw data on the stack and the raw_orders table over it (what compaction needs)."""
    run_load(local_stack, 5, rate=0, seed=133)
    wait_delivered(local_stack, timeout=60)
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [raw_orders_table], instance=instance, resources=resources_for(local_stack)
        ).success
    return local_stack


def shipped_instance_config() -> dict:
    """The pool settings of the repo's dagster/dagster.yaml (what `make run` and aws use)."""
    config = yaml.safe_load((ROOT / "dagster" / "dagster.yaml").read_text())
    return {"concurrency": config["concurrency"]}


def _materialize_in_thread(settings: Settings, instance: dg.DagsterInstance) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        # What the UI's "Materialize" button runs: the asset job, no tags.
        try:
            outcome["result"] = dg.materialize(
                [orders_latest], instance=instance, resources=resources_for(settings), raise_on_error=False
            )
        except Exception as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _events(instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> list:
    return instance.get_event_records(dg.EventRecordsFilter(event_type=event_type))


def test_a_ui_materialization_during_a_refresh_waits_for_the_writer_slot(crawled: Settings) -> None:
    local_stack = crawled
    with dg.instance_for_test(overrides=shipped_instance_config()) as instance:
        storage = instance.event_log_storage
        # A refresh in progress: it holds the pool's only slot and the compaction's S3 lock.
        refresh_run = "refresh-in-progress"
        storage.initialize_concurrency_limit_to_default(policies.WRITER_POOL)  # the shipped limit
        assert storage.get_concurrency_info(policies.WRITER_POOL).slot_count == 1
        claim = storage.claim_concurrency_slot(policies.WRITER_POOL, refresh_run, "orders_latest")
        assert claim.is_claimed
        with S3Lock(local_stack, LOCK_KEY).held():
            thread, outcome = _materialize_in_thread(local_stack, instance)
            # Queued on the pool: the step waits for the slot, so it cannot fail on the lock.
            deadline = time.monotonic() + 90
            while storage.get_concurrency_info(policies.WRITER_POOL).pending_step_count == 0:
                assert time.monotonic() < deadline, "the materialization never asked for the writer slot"
                assert thread.is_alive(), "the materialization ended instead of waiting"
                time.sleep(0.5)
            time.sleep(5)  # still waiting a while later, and nothing failed
            info = storage.get_concurrency_info(policies.WRITER_POOL)
            assert thread.is_alive() and info.pending_step_count == 1 and info.active_run_ids == {refresh_run}
            assert not _events(instance, dg.DagsterEventType.STEP_FAILURE)
        storage.free_concurrency_slots_for_run(refresh_run)
        thread.join(timeout=600)
    assert not thread.is_alive(), "the materialization did not finish once the slot was free"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].success


def test_a_retry_recovers_from_a_held_compaction_lock(crawled: Settings) -> None:
    local_stack = crawled
    with dg.instance_for_test() as instance:
        with S3Lock(local_stack, LOCK_KEY).held():
            thread, outcome = _materialize_in_thread(local_stack, instance)
            deadline = time.monotonic() + 60
            while not _events(instance, dg.DagsterEventType.STEP_UP_FOR_RETRY):
                assert time.monotonic() < deadline, "the locked compaction was not retried"
                time.sleep(0.5)
        (retry,) = _events(instance, dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert "CompactionLocked" in str(retry.event_log_entry.dagster_event.event_specific_data)
        thread.join(timeout=600)
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert result.success
        assert _events(instance, dg.DagsterEventType.STEP_RESTARTED)


def test_a_rollup_build_waits_for_another_build_of_the_same_rollup(local_stack: Settings) -> None:

    name = "customer_activity"
    scratch = f"{name}__build"
    # Another build in progress: it holds the rollup's lease and has its scratch table registered.
    with S3Lock(local_stack, ROLLUP_LOCK_KEY.format(name=name)).held():
        location = local_stack.s3_uri(f"curated/{name}/v=other-build/")
        glue.put_table(local_stack, glue.parquet_table_input(scratch, [("customer_id", "string")], location))
        engine = engine_for(local_stack)
        try:
            with pytest.raises(CompactionLocked, match=r"rollup-customer_activity\.lock"):
                build_rollup(local_stack, engine, name)
        finally:
            engine.close()
        assert glue.get_table(local_stack, scratch) is not None, "the other build's table was dropped"
        glue.delete_table(local_stack, scratch)
