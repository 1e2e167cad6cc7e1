"""Named SQL and its rendering.

SQL is written once, in Athena's dialect (Trino), in each area's `sql/` folder. `{name}` placeholders
are filled with literals (`literal`) or SQL fragments (`Sql`); the business rules of `sales_ops.schema`
are fragments every template may use.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sales_ops.query.errors import QueryError
from sales_ops.schema import SQL_RULES

PACKAGE = Path(__file__).resolve().parents[1]
# Queries meant for people (`sales-ops query --named`, `--list`) live beside the engine; the other
# areas keep the SQL they run themselves beside their code.
PEOPLE_SQL = PACKAGE / "query" / "sql"
SQL_DIRS = (
    PEOPLE_SQL,
    PACKAGE / "curated" / "sql",
    PACKAGE / "quality" / "sql",
    PACKAGE / "dashboard" / "sql",
)
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Sql(str):
    """A SQL fragment passed to a template as is (everything else is rendered as a literal)."""


def named_queries() -> dict[str, str]:
    """The queries meant for people: name → their description (the leading comment lines)."""
    out = {}
    for path in sorted(PEOPLE_SQL.glob("*.sql")):
        lines = path.read_text().lstrip().splitlines()
        comment = []
        for line in lines:  # the whole leading comment, never cut mid-sentence
            if not line.startswith("--"):
                break
            comment.append(line.removeprefix("--").strip())
        out[path.stem] = " ".join(c for c in comment if c)
    return out


def named_parameters(name: str) -> list[str]:
    """The parameters `<name>.sql` takes (its {placeholders} other than the business rules)."""
    path = sql_path(name)
    if path is None:
        return []
    found = dict.fromkeys(_PARAM.findall(path.read_text()))
    return [p for p in found if p not in SQL_RULES and p != "database"]


def sql_path(name: str) -> Path | None:
    """Where `<name>.sql` lives, among every area's SQL."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        return None
    return next((d / f"{name}.sql" for d in SQL_DIRS if (d / f"{name}.sql").exists()), None)


def render_named(name: str, database: str, /, **params: Any) -> str:
    """The SQL of `<name>.sql` with {placeholders} filled in (the business rules included).

    A parameter the query does not take is an error, not silently dropped.
    """
    path = sql_path(name)
    if path is None:
        known = ", ".join(named_queries())
        raise QueryError(f"no named query {name!r}; known: {known}")
    if not re.fullmatch(r"[A-Za-z0-9_]+", database):
        raise QueryError(f"invalid database name {database!r}")
    takes = named_parameters(name)
    unknown = sorted(set(params) - set(takes))
    if unknown:
        accepted = ", ".join(takes) if takes else "none"
        raise QueryError(f"{name} takes no parameter {', '.join(unknown)} (it takes: {accepted})")
    return render(path.read_text(), database=Sql(database), **params)


def render(template: str, **params: Any) -> str:
    """`template` with each {name} replaced: a business rule of `sales_ops.schema`, or a parameter."""
    values = {**{k: Sql(v) for k, v in SQL_RULES.items()}, **params}
    needed = set(_PARAM.findall(template))
    missing = sorted(needed - values.keys())
    if missing:
        raise QueryError(f"the query needs parameter(s): {', '.join(missing)}")
    return _PARAM.sub(lambda m: literal(values[m.group(1)], top=True), template)


def literal(value: Any, top: bool = False) -> str:
    """A Trino literal; a list becomes `a, b, c` (for IN lists; empty → NULL, matching nothing)."""
    if isinstance(value, Sql):
        return str(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, list | tuple | set | frozenset) and top:
        return ", ".join(literal(v) for v in value) or "NULL"
    return "'" + str(value).replace("'", "''") + "'"
