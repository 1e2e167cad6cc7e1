"""The control-plane policies, in one place: who may write at once, when assets run, how fresh they
must be, how they retry, and who owns them. The areas' assets and checks take these by name.

Checked against dagster 1.13.27 (`dagster/_core/definitions/declarative_automation/
automation_condition.py`, `freshness.py`, `instance/config.py`) and the Dagster docs on pools,
declarative automation, freshness policies and op retries.
"""

import os
from datetime import timedelta
from typing import Any

import dagster as dg
from sales_ops.settings import cadence_cron, cadence_minutes_from_env

# Every asset that writes the Glue catalogue or the curated tables takes a slot of this pool. The
# instance config (dagster/dagster.yaml: `concurrency.pools`, op granularity, limit 1) gives it one
# slot, so a second writer, a UI "Materialize" click included, waits for the slot instead of
# failing on the S3 lock. The S3 locks stay as the guard for CLI runs, which Dagster does not see.
WRITER_POOL = "sales_ops_writer"

# A throttled Glue/Athena call or a writer lock held by a CLI run is transient: retry with
# exponential backoff (10 s, 20 s, 40 s, plus jitter) before the run fails.
WRITER_RETRY = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Runs the automation launches carry a maximum runtime; run monitoring (dagster.yaml) cancels a run
# past it, so a hung writer cannot hold the pool slot for ever. UI runs get the instance default.
MAX_RUNTIME_S = 1800

OWNERS = ["team:sales-ops"]

HOURLY = "5 * * * *"  # at :05, so the hour's last raw files have landed

# Declarative automation. Each condition's label is what the asset's Automation tab shows.
# Crawl only when `raw_orders` does not exist yet: compaction registers new dt/hour partitions
# itself, so a periodic crawl would only add Glue cost (the aws issue); run it by hand after a
# schema change (the raw_schema check says when). A failed crawl is not retried by the next tick:
# each attempt starts the crawler (Glue bills a 10-minute minimum) and alerts; after the alert, fix
# the cause and materialize raw_orders_table by hand.
CRAWL_WHEN_MISSING = (
    dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed().with_label("last attempt failed")
).with_label("crawl when raw_orders is missing")

# orders_backfill shows in the lineage upstream of orders_latest (the backfill rewrites it), but it
# is run by hand or by its sensor: compaction neither waits for it (missing) nor follows it.
NOT_BACKFILL = dg.AssetSelection.assets("orders_backfill")

# Once an hour whatever happened: late events under an already-seen dt/hour prefix are invisible to
# the raw-objects sensor's StartAfter cursor; compaction finds them from its own state. Not while
# an input (raw_orders) is missing: compaction would only fail.
HOURLY_BACKSTOP = (
    dg.AutomationCondition.cron_tick_passed(HOURLY).since_last_handled()  # type: ignore[misc]
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.in_progress()
).with_label("hourly backstop")

# The cadence (SALES_OPS_CADENCE_MINUTES, docs/design.md §2.5): compaction and the rollups run at
# most once per tick of a `*/N` cron, however often new data is observed; orders_live answers in
# real time in between.
CADENCE_MINUTES = cadence_minutes_from_env(os.environ)
CADENCE = (
    dg.AutomationCondition.cron_tick_passed(  # type: ignore[misc]
        cadence_cron(CADENCE_MINUTES)
    )
    .since_last_handled()
    .with_label(f"at most every {CADENCE_MINUTES} min")
)

# orders_latest: on new raw data (eager) at most once per cadence tick, and hourly.
COMPACT = (
    ((dg.AutomationCondition.eager() & CADENCE) | HOURLY_BACKSTOP)
    .ignore(NOT_BACKFILL)  # type: ignore[attr-defined]  # an OrAutomationCondition's method
    .with_label(f"eager at most every {CADENCE_MINUTES} min, or hourly")
)

# The rollups: after each orders_latest update (itself at most once per cadence tick), but only
# once its blocking checks passed.
ROLLUP = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, after blocking checks passed")

# The rollups over a window of days (rollups.HOURLY_ROLLUPS, docs/design.md §2.7): hourly, not
# after each compaction; at once while missing (a new deployment), unless that attempt failed.
HOURLY_ROLLUP = (
    (
        dg.AutomationCondition.cron_tick_passed(HOURLY).since_last_handled()  # type: ignore[misc]
        | (dg.AutomationCondition.missing() & ~dg.AutomationCondition.execution_failed())
    )
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("hourly (and when missing), after blocking checks passed")

# Checks that validate a new materialization run with it (requested in the same tick).
WITH_ASSET = dg.AutomationCondition.eager().with_label("with each update of the asset")


def every(cron: str, label: str) -> dg.AutomationCondition:
    """A check on its own cadence, whether or not the asset changed (e.g. raw-data freshness)."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron).since_last_handled()  # type: ignore[misc]
        & ~dg.AutomationCondition.in_progress()
    ).with_label(label)


# Freshness (the FreshnessDaemon, `freshness.enabled` in dagster.yaml): a curated table should be
# rebuilt at least hourly, by the backstop on a quiet shop. The warning leaves the backstop's run
# half an hour of margin (a window equal to its period would warn every hour); failing is 2 h.
CURATED_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(minutes=90)
)

# A run carrying this tag rebuilt the curated tables from a baseline (the backfill); the
# reconciliation runs right after one, besides its hourly tick.
BACKFILL_TAG = "sales_ops/backfill"

# Typed for both asset and check keys: dagster 1.13's annotations otherwise narrow it to assets.
RECONCILE: dg.AutomationCondition[Any] = (
    every(HOURLY, "hourly")
    | dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.newly_updated()
        & dg.AutomationCondition.executed_with_tags(tag_keys={BACKFILL_TAG})
    ).with_label("after a backfill")
).with_label("hourly, and after a backfill")
