"""Every use of a Dagster API that is not public, in one place (issue 24, bug 8).

Dagster 1.13 has no public way to do these; each is checked against VERIFIED_VERSION by
tests/test_dagster_internals.py, which fails on any other version so that an upgrade re-checks
them here instead of breaking a sensor at run time. Everything else uses `import dagster as dg`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dagster._core.definitions.data_version import DATA_VERSION_TAG as _DATA_VERSION_TAG
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

import dagster as dg

VERIFIED_VERSION = "1.13.27"

# The tag an observation's data version travels in: what `ObserveResult(data_version=…)` writes. A
# sensor's `AssetObservation` has no data_version argument, only tags.
DATA_VERSION_TAG: str = _DATA_VERSION_TAG

CheckRecord = AssetCheckExecutionRecord
CHECK_PLANNED = AssetCheckExecutionRecordStatus.PLANNED
CHECK_SUCCEEDED = AssetCheckExecutionRecordStatus.SUCCEEDED
CHECK_FAILED = AssetCheckExecutionRecordStatus.FAILED


def check_history(
    instance: dg.DagsterInstance,
    key: dg.AssetCheckKey,
    limit: int,
    done_only: bool = False,
) -> Sequence[AssetCheckExecutionRecord]:
    """A check's execution records, newest first (`done_only`: evaluated ones, passed or failed).

    The instance exposes only the latest record (`get_latest_asset_check_evaluation_record`); the
    history is the event log storage's. It works on every storage, sqlite's run-sharded one too.
    """
    status = {CHECK_SUCCEEDED, CHECK_FAILED} if done_only else None
    return instance.event_log_storage.get_asset_check_execution_history(key, limit=limit, status=status)


def pool_holders(instance: dg.DagsterInstance, pool: str) -> set[str]:
    """Run ids holding a slot of `pool` (what the UI's pool page shows)."""
    return set(instance.event_log_storage.get_concurrency_info(pool).active_run_ids)


def guard_webserver_app(wrap: Callable[[Any], Any]) -> None:
    """Make `dagster-webserver` (its CLI, run in this process) serve `wrap(app)` instead of its app.

    The webserver builds its Starlette app inside its CLI; there is no hook to add middleware.
    """
    from dagster_webserver import cli

    build = cli.create_app_from_workspace_process_context

    def guarded(*args: Any, **kwargs: Any) -> Any:
        return wrap(build(*args, **kwargs))

    cli.create_app_from_workspace_process_context = guarded
