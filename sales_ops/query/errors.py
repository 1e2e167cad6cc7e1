"""The errors every engine raises: the engine's own message, and a missing table named."""

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
