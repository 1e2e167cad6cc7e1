"""The aws engine: Athena through pyathena."""

from __future__ import annotations

import re
import time
from typing import Any

from sales_ops.query.base import QueryResult, _EngineBase
from sales_ops.query.errors import MissingTableError, QueryError, ScanCutoffError
from sales_ops.settings import ATHENA_RESULTS_PREFIX, Settings

MAX_REUSE_MINUTES = 10080  # ResultReuseByAgeConfiguration.MaxAgeInMinutes: 7 days at most


class AthenaEngine(_EngineBase):
    """Athena through pyathena: the stack's workgroup, results under athena-results/.

    With `result_reuse_minutes`, each query asks Athena to answer from the stored result of the
    same query (same string, database, result configuration, workgroup) if one is at most that old,
    without scanning again: "Reuse query results in Athena"
    (https://docs.aws.amazon.com/athena/latest/ug/reusing-query-results.html; engine version 3,
    which the template's workgroup selects; at most 10080 minutes, per StartQueryExecution's
    ResultReuseByAgeConfiguration). For readers that tolerate that age (the dashboard) only:
    compaction and the checks must see new data, so they never set it.
    """

    name = "athena"

    def __init__(self, settings: Settings, poll_interval: float = 0.5, result_reuse_minutes: int = 0) -> None:
        from pyathena import connect

        self.settings = settings
        self.result_reuse_minutes = result_reuse_minutes
        # The settings' own boto3 session: one credential chain (and its event hooks) for all calls.
        extra: dict[str, Any] = {"session": settings._session}
        if settings.endpoint_url:  # only for tests against the emulator's Athena API
            extra["endpoint_url"] = settings.endpoint_url
        self.conn = connect(
            s3_staging_dir=settings.s3_uri(ATHENA_RESULTS_PREFIX),
            work_group=settings.workgroup,
            region_name=settings.region,
            schema_name=settings.database,
            poll_interval=poll_interval,
            **extra,
        )

    def close(self) -> None:
        self.conn.close()

    def _run(self, sql: str, trusted: bool = True) -> QueryResult:
        """On AWS, what SQL may touch is Athena's and IAM's business (infra/template.yaml)."""
        from pyathena.error import Error

        started = time.monotonic()
        cursor = self.conn.cursor()
        try:
            if self.result_reuse_minutes:
                cursor.execute(sql, result_reuse_enable=True, result_reuse_minutes=self.result_reuse_minutes)
            else:
                cursor.execute(sql)
            rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        except Error as exc:
            raise _athena_error(str(exc), sql, self.settings.scan_cutoff_bytes) from None
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(
            columns, rows, int(cursor.data_scanned_in_bytes or 0), time.monotonic() - started, self.name
        )


def _athena_error(message: str, sql: str, cutoff: int) -> QueryError:
    """pyathena's error (the query's StateChangeReason) as the project's error."""
    if "Bytes scanned limit was exceeded" in message:  # the workgroup cancelled it (CANCELLED)
        return ScanCutoffError(None, cutoff, sql)
    missing = re.search(r"Table '([^']+)' does not exist", message) or re.search(
        r"Schema '([^']+)' does not exist", message
    )
    if missing:
        table = missing.group(1).removeprefix("awsdatacatalog.")
        return MissingTableError(table, message, sql)
    return QueryError(message, sql)
