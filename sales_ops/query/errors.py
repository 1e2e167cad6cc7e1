"""The errors every engine raises: the engine's own message, a missing table named, a scan cut off."""

from __future__ import annotations


class QueryError(Exception):
    """The engine refused or failed the statement; the message is the engine's own."""

    def __init__(self, message: str, sql: str | None = None) -> None:
        super().__init__(message)
        self.sql = sql


class MissingTableError(QueryError):
    """A table the statement names is not in the catalog."""

    def __init__(self, table: str, message: str | None = None, sql: str | None = None) -> None:
        super().__init__(message or f"table {table} does not exist in the Glue catalog", sql)
        self.table = table


class ScanCutoffError(QueryError):
    """The statement scanned more than the workgroup's per-query cutoff, so Athena cancelled it.

    "If any query that runs in the workgroup exceeds the limit, it is canceled" (Athena user guide,
    "Setting data usage control limits"); the query ends CANCELLED with the reason "Bytes scanned
    limit was exceeded". The local engine enforces the same figure with the same words.
    """

    def __init__(self, scanned: int | None, cutoff: int, sql: str | None = None) -> None:
        amount = f"it scanned {scanned:,} bytes" if scanned is not None else "it scanned"
        super().__init__(
            f"Bytes scanned limit was exceeded: {amount}, more than the workgroup's per-query cutoff "
            f"of {cutoff:,} bytes (BytesScannedCutoffPerQuery). Query the Parquet tables "
            "(orders_latest) or narrow raw_orders by dt, or raise AthenaBytesScannedCutoff",
            sql,
        )
        self.scanned = scanned
        self.cutoff = cutoff
