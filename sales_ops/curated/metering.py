"""Counting what a stage of a cycle runs: statements and bytes scanned (docs/design.md §2.5).

`Metered(engine)` is an engine (the `SqlEngine` protocol) that passes every statement through and
records each one's kind, name and `bytes_scanned` (the engine's own figure: Athena's
DataScannedInBytes, the local engine's HTTP bytes). A stage is whatever ran between two
`stage(name)` calls, so a test or a benchmark can say what compaction, the rollups or the checks
of one cycle read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sales_ops.query import QueryResult, SqlEngine
from sales_ops.settings import Settings


@dataclass
class Statement:
    stage: str
    name: str  # the named query, or the first words of the SQL
    bytes_scanned: int


@dataclass
class Metered:
    engine: SqlEngine
    current: str = "cycle"
    log: list[Statement] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    def stage(self, name: str) -> None:
        self.current = name

    def _record(self, name: str, result: QueryResult) -> QueryResult:
        self.log.append(Statement(self.current, name, result.bytes_scanned))
        return result

    def query(self, sql: str) -> QueryResult:
        return self._record(" ".join(sql.split()[:4]), self.engine.query(sql))

    def execute(self, sql: str) -> QueryResult:
        return self._record(" ".join(sql.split()[:4]), self.engine.execute(sql))

    def named(self, name: str, **params: Any) -> QueryResult:
        return self._record(name, self.engine.named(name, **params))

    def close(self) -> None:
        self.engine.close()

    def by_stage(self) -> dict[str, tuple[int, int]]:
        """stage → (statements, bytes scanned)."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.log:
            n, b = out.get(s.stage, (0, 0))
            out[s.stage] = (n + 1, b + s.bytes_scanned)
        return out
