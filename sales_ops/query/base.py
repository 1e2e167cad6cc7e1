"""What every SQL engine shares: the result, the errors, the interface and its common base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self

from sales_ops.query.templates import render_named
from sales_ops.settings import Settings


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    bytes_scanned: int
    seconds: float
    engine: str
    bytes_written: int = 0

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class SqlEngine(Protocol):
    name: str
    settings: Settings  # the target's names (the per-cycle checks read the compaction's state)

    def query(self, sql: str) -> QueryResult: ...

    def named(self, name: str, **params: Any) -> QueryResult: ...

    def execute(self, sql: str) -> QueryResult: ...

    def close(self) -> None: ...


class _EngineBase:
    """What both engines share: every statement goes through the engine's own `_run`.

    `query` is for people's SQL (the CLI): the local engine does not let it write into the raw,
    errors or curated zones. `execute` and `named` run the project's own SQL (compaction,
    rollups, checks, the dashboard), which may.
    """

    settings: Settings

    def _run(self, sql: str, trusted: bool) -> QueryResult:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> QueryResult:
        return self._run(sql, trusted=False)

    def execute(self, sql: str) -> QueryResult:
        return self._run(sql, trusted=True)

    def named(self, name: str, **params: Any) -> QueryResult:
        return self._run(render_named(name, self.settings.database, **params), trusted=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
