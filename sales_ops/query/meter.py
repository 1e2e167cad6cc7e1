"""Statements and bytes scanned per named stage: the measured side of the cost model.

`Meter.engine` wraps any `SqlEngine` and records every statement that goes through it (its kind,
its named query if any, and the `bytes_scanned` the engine reported) under the stage that is
current (`with meter.stage("compact"): …`). It changes nothing of the engine's behaviour: every
call is passed on as it was made, results and errors come back unchanged. A statement that fails
is recorded too (with 0 bytes: the engine did not say), since Athena bills a cancelled query's
scan (https://aws.amazon.com/athena/pricing/).

`run_cycle` runs one automation cycle through the stages' public entry points, each under its own
stage name: scripts/cost_table.py, tests/test_cost.py and bench/bench_history.py measure the same
thing with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sales_ops.query.base import QueryResult, SqlEngine
from sales_ops.query.templates import render_named
from sales_ops.settings import Settings

# One cycle's stages, in the order the automation runs them (docs/deploy-aws.md, "Cost notes").
# The hourly ones run once an hour, not each cycle: the rollups over a window of days
# (rollups.HOURLY_ROLLUPS), and the dashboard's read of their new build (metrics.RollupReads).
CYCLE_STAGES = (
    "compact",
    "rollups",
    "hourly_rollups",
    "checks",
    "reconciliation",
    "hourly_dashboard",
    "dashboard",
)
HOURLY_STAGES = ("hourly_rollups", "hourly_dashboard")
# Athena bills no DDL (CREATE/ALTER/DROP TABLE, partition statements), but does bill a CTAS.
_DDL = re.compile(r"^\s*(ALTER|DROP|MSCK|SHOW|DESCRIBE|CREATE(?!\s+TABLE\s.*\bAS\b))\b", re.I | re.S)


@dataclass
class Statement:
    stage: str
    kind: str  # query | execute | named
    label: str  # the named query, else the statement's first words
    bytes_scanned: int
    failed: bool = False
    ddl: bool = False


@dataclass
class StageUse:
    statements: list[Statement] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Statements Athena would bill (DDL is free)."""
        return sum(1 for s in self.statements if not s.ddl)

    @property
    def bytes_scanned(self) -> int:
        return sum(s.bytes_scanned for s in self.statements)


class Meter:
    """Records statements per stage; `engine(inner)` gives the metered engine to pass to a stage."""

    def __init__(self) -> None:
        self.current = "other"
        self.statements: list[Statement] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        before, self.current = self.current, name
        try:
            yield
        finally:
            self.current = before

    def engine(self, inner: SqlEngine) -> MeteredEngine:
        return MeteredEngine(inner, self)

    def record(self, kind: str, label: str, sql: str, result: QueryResult | None) -> None:
        self.statements.append(
            Statement(
                stage=self.current,
                kind=kind,
                label=label,
                bytes_scanned=result.bytes_scanned if result else 0,
                failed=result is None,
                ddl=bool(_DDL.match(sql)),
            )
        )

    def totals(self) -> dict[str, tuple[int, int]]:
        """stage → (statements, bytes scanned), every statement counted."""
        return {name: (len(use.statements), use.bytes_scanned) for name, use in self.by_stage().items()}

    def by_stage(self) -> dict[str, StageUse]:
        out: dict[str, StageUse] = {}
        for statement in self.statements:
            out.setdefault(statement.stage, StageUse()).statements.append(statement)
        return out


class MeteredEngine:
    """A `SqlEngine` that passes every call on to `inner` and records it in the meter."""

    def __init__(self, inner: SqlEngine, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter
        self.name = inner.name
        self.settings = inner.settings

    def query(self, sql: str) -> QueryResult:
        return self._recorded("query", self._label(sql), sql, lambda: self.inner.query(sql))

    def execute(self, sql: str) -> QueryResult:
        return self._recorded("execute", self._label(sql), sql, lambda: self.inner.execute(sql))

    def named(self, name: str, **params: Any) -> QueryResult:
        # Rendered here only to tell DDL from a billed statement; the engine renders it again.
        sql = render_named(name, self.settings.database, **params)
        return self._recorded("named", name, sql, lambda: self.inner.named(name, **params))

    def close(self) -> None:
        self.inner.close()

    def _label(self, sql: str) -> str:
        """The statement's first three words without the database, e.g. `INSERT INTO rollup__build`:
        the same label whatever database a run uses."""
        lines = [line for line in sql.splitlines() if line.strip() and not line.strip().startswith("--")]
        label = " ".join(" ".join(lines).split()[:3])[:80]
        return label.replace(f"{self.settings.database}.", "")

    def _recorded(self, kind: str, label: str, sql: str, run: Any) -> QueryResult:
        try:
            result = run()
        except Exception:
            self.meter.record(kind, label, sql, None)
            raise
        self.meter.record(kind, label, sql, result)
        return result


def run_cycle(
    settings: Settings,
    engine: SqlEngine,
    meter: Meter,
    reconcile: bool = True,
    fold_fraction: float | None = None,
) -> dict[str, Any]:
    """One automation cycle through the stages' public entry points, each metered as its own stage:
    compaction, the rollups (those of each cycle, then the hourly ones), the checks that run with
    each orders_latest update (no reconciliation), the sampled reconciliation (hourly on aws), the
    dashboard's read of the hourly rollups' new builds, and one dashboard refresh (which reuses
    that read). `fold_fraction`: compaction's (0: a cycle that folds whatever its history).
    Returns each stage's own result (reports, outcomes, panels)."""
    from sales_ops.curated.compaction import FOLD_FRACTION, compact
    from sales_ops.curated.rollups import CYCLE_ROLLUPS, HOURLY_ROLLUPS, build_rollups
    from sales_ops.dashboard.metrics import RollupReads, collect_metrics
    from sales_ops.quality.checks import run_checks
    from sales_ops.quality.reconciliation import check_reconciliation

    metered = meter.engine(engine)
    out: dict[str, Any] = {}
    with meter.stage("compact"):
        fraction = FOLD_FRACTION if fold_fraction is None else fold_fraction
        out["compact"] = compact(settings, metered, fold_fraction=fraction)
    with meter.stage("rollups"):
        out["rollups"] = build_rollups(settings, metered, names=CYCLE_ROLLUPS)
    with meter.stage("hourly_rollups"):
        out["hourly_rollups"] = build_rollups(settings, metered, names=HOURLY_ROLLUPS)
    with meter.stage("checks"):
        out["checks"] = run_checks(settings, metered, reconcile=False)
    if reconcile:
        with meter.stage("reconciliation"):
            out["reconciliation"] = check_reconciliation(settings, metered, source="sample")
    reads = RollupReads()
    with meter.stage("hourly_dashboard"):
        out["hourly_dashboard"] = reads.customers(settings, metered)
    with meter.stage("dashboard"):
        out["dashboard"] = collect_metrics(settings, metered, reads)
    return out
