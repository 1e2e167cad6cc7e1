"""The automation conditions of policies.py evaluated by Dagster on the real definitions, without an
emulator (nothing is executed: failures are recorded by runs of a same-named asset that raises)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sales_ops.definitions import defs
from sales_ops.defs.internals import DATA_VERSION_TAG

T0 = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def requested(result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    keys = [r.key for r in result.results if r.true_subset.size]
    return {key.to_user_string() for key in keys if isinstance(key, dg.AssetKey)}


def observe_raw(instance: dg.DagsterInstance, newest_key: str) -> None:
    """What the raw-objects sensor reports: an observation whose data version is the newest key."""
    instance.report_runless_asset_event(
        dg.AssetObservation("raw_orders_files", tags={DATA_VERSION_TAG: newest_key})
    )


def fail(instance: dg.DagsterInstance, name: str) -> None:
    """A run that tried to materialize `name` and failed (the crawler failing, say)."""

    @dg.asset(name=name)
    def broken() -> None:
        raise RuntimeError("crawler failed")

    assert not dg.materialize([broken], instance=instance, raise_on_error=False).success


def test_a_failed_crawl_is_not_retried_by_every_tick_nor_compaction_run_without_its_table() -> None:
    with dg.instance_for_test() as instance:
        observe_raw(instance, "raw/orders/dt=2026-12-03/hour=09/a")
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=T0)
        assert "raw_orders_table" in requested(first), "raw_orders is missing: crawl it"
        fail(instance, "raw_orders_table")
        # Each re-request would start the crawler again (Glue bills 10 minutes a start) and alert.
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor, evaluation_time=T0 + timedelta(minutes=1)
        )
        assert "raw_orders_table" not in requested(second)
        # The hourly backstop passes (:05), but compaction needs raw_orders: not requested either.
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=second.cursor, evaluation_time=T0 + timedelta(hours=1)
        )
        assert requested(third) & {"raw_orders_table", "orders_latest"} == set()
