"""Named SQL and its rendering (sales_ops/query/templates.py), and the business rules written once.

No emulator: the templates are rendered and parsed (sqlglot, Athena's Trino dialect), and each SQL
file is checked against the callers that really run it, found in the code itself.
"""

from __future__ import annotations

import ast
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
from typer.testing import CliRunner

from sales_ops.cli import app
from sales_ops.query import QueryError, Sql, literal, named_queries, render, render_named
from sales_ops.query.templates import PACKAGE, PEOPLE_SQL, SQL_DIRS, sql_path
from sales_ops.schema import EVENT_COLUMNS, LATEST_COLUMNS, NOT_SALE_STATUSES, SQL_RULES

SQL_FILES = sorted(path for d in SQL_DIRS for path in d.glob("*.sql"))
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


# --- literals and rendering -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "sql"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (False, "FALSE"),
        (42, "42"),
        (-1.5, "-1.5"),
        (Decimal("12.30"), "12.30"),
        ("plain", "'plain'"),
        ("O'Brien", "'O''Brien'"),
        ("'; DROP TABLE orders; --", "'''; DROP TABLE orders; --'"),
        (date(2026, 3, 1), "DATE '2026-03-01'"),
        (datetime(2026, 3, 1, 12, 0), "'2026-03-01 12:00:00'"),  # a datetime is not a DATE
        (Sql("status = 'PAID'"), "status = 'PAID'"),
    ],
)
def test_literal(value: object, sql: str) -> None:
    assert literal(value) == sql


def test_a_quote_cannot_end_the_string() -> None:
    hostile = "x' OR '1'='1"
    rendered = render("SELECT * FROM t WHERE name = {name}", name=hostile)
    (condition,) = sqlglot.parse_one(rendered, read="trino").find_all(sqlglot.exp.EQ)
    assert condition.expression.this == hostile  # one string literal holding the whole value


def test_lists_become_in_lists_and_an_empty_one_matches_nothing() -> None:
    assert render("x IN ({v})", v=["a", "it's"]) == "x IN ('a', 'it''s')"
    assert render("x IN ({v})", v=[date(2026, 1, 2), 3]) == "x IN (DATE '2026-01-02', 3)"
    assert render("x IN ({v})", v=[]) == "x IN (NULL)"
    assert render("x IN ({v})", v=frozenset({7})) == "x IN (7)"


def test_rules_are_fragments_and_placeholders_are_identifiers() -> None:
    assert render("WHERE {is_sale}") == f"WHERE {SQL_RULES['is_sale']}"
    assert render("{a} {a} {b}", a=1, b="x") == "1 1 'x'"
    assert render("no placeholders, {not a placeholder}") == "no placeholders, {not a placeholder}"


def test_missing_parameters_are_named() -> None:
    with pytest.raises(QueryError, match="needs parameter\\(s\\): dates, version"):
        render("SELECT {version} WHERE d IN ({dates})")


def test_render_named_checks_the_name_and_the_database() -> None:
    sql = render_named("unique_products", "my_db")
    assert "FROM my_db.orders_live" in sql
    with pytest.raises(QueryError, match=r"no named query 'nope'; known: .*total_sales_by_product"):
        render_named("nope", "my_db")
    with pytest.raises(QueryError, match="no named query"):
        render_named("../query/sql/unique_products", "my_db")  # a name, never a path
    with pytest.raises(QueryError, match="invalid database name"):
        render_named("unique_products", "db; DROP TABLE x")


def test_every_area_finds_its_sql_and_names_are_unique() -> None:
    stems = [p.stem for p in SQL_FILES]
    assert len(stems) == len(set(stems)), "two areas hold SQL of the same name"
    assert all(sql_path(p.stem) == p for p in SQL_FILES)
    assert {p.parent.parent.name for p in SQL_FILES} == {d.parent.name for d in SQL_DIRS}


# --- the people's queries -----------------------------------------------------------------------
def test_named_queries_are_the_peoples_queries_each_described() -> None:
    people = {p.stem for p in PEOPLE_SQL.glob("*.sql")}
    assert set(named_queries()) == people
    assert all(description.endswith(".") for description in named_queries().values())


def test_query_list_shows_only_the_peoples_queries() -> None:
    result = CliRunner().invoke(app, ["query", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert listed == {p.stem for p in PEOPLE_SQL.glob("*.sql")}
    internal = {p.stem for p in SQL_FILES if p.parent != PEOPLE_SQL}
    assert {"compact_orders", "check_amounts", "dashboard_live"} <= internal
    assert not internal & set(result.output.split())


# --- the business rules, written once -----------------------------------------------------------
def code_of(sql: str) -> str:
    """The SQL without its `--` comments (prose may say "cancelled"; code may not)."""
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


CONTRACT_NAMES = sorted({c.name for c in (*LATEST_COLUMNS, *EVENT_COLUMNS)}, key=len, reverse=True)
_NAME = r"(?:\w+\.)?(?:" + "|".join(CONTRACT_NAMES) + r")\b"
# Five or more contract columns in a row is the column list written out again.
COLUMN_LIST = re.compile(rf"\b{_NAME}(?:\s*,\s*{_NAME}){{4,}}")
STATUSES = re.compile(r"\b(" + "|".join(NOT_SALE_STATUSES) + r")\b", re.IGNORECASE)
CREATED_TS = re.compile(r"from_iso8601_timestamp\s*\(\s*created_at\s*\)", re.IGNORECASE)


def test_the_detectors_recognise_the_rules_they_look_for() -> None:
    assert STATUSES.findall(SQL_RULES["is_sale"]) == list(NOT_SALE_STATUSES)
    assert CREATED_TS.fullmatch(SQL_RULES["created_ts"])
    assert COLUMN_LIST.search(SQL_RULES["latest_columns"])
    assert COLUMN_LIST.search("SELECT o.order_id, o.customer_id,\n o.product_id, product_name, category")
    assert not COLUMN_LIST.search("SELECT product_id, product_name, category, count(*) AS orders")


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_no_sql_file_spells_out_a_rule(path: Path) -> None:
    code = code_of(path.read_text())
    assert not STATUSES.search(code), "name the sale rule as {is_sale} (sales_ops.schema)"
    assert not CREATED_TS.search(code), "use {created_ts} (sales_ops.schema)"
    assert not COLUMN_LIST.search(code), "use {latest_columns} or {raw_as_latest} (sales_ops.schema)"


def callers() -> dict[str, list[set[str]]]:
    """For each SQL name, the parameter names of every call in the package that runs it.

    `engine.named("name", k=...)` and `render_named("name" or f"prefix_{x}", database, k=...)`.
    """
    found: dict[str, list[set[str]]] = {}
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called not in ("named", "render_named"):
                continue
            params = {k.arg for k in node.keywords if k.arg}
            for stem in _names(node.args[0]):
                found.setdefault(stem, []).append(params)
    return found


def _names(arg: ast.expr) -> list[str]:
    stems = [p.stem for p in SQL_FILES]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)  # f"rollup_{name}": every file of that prefix
        return [s for s in stems if s.startswith(prefix)]
    return []


CALLERS = callers()


def test_the_callers_are_found() -> None:
    assert CALLERS["compact_orders"] and "new_events" in CALLERS["compact_orders"][0]
    assert {"customer_activity_pass", "dashboard_live", "check_amounts"} <= set(CALLERS)
    assert set(CALLERS) <= {p.stem for p in SQL_FILES}, "code runs SQL that no file holds"


# Parameters that stand for a relation or a whole SELECT (the rest are values or conditions).
RELATIONS = {
    "latest": Sql("t"),
    "live": Sql("t"),
    "settled": Sql("SELECT 1"),
    "base": Sql("t"),
    "tombstones": Sql("t"),
}


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_placeholder_is_a_rule_or_a_parameter_its_caller_passes(path: Path) -> None:
    placeholders = set(PLACEHOLDER.findall(path.read_text()))
    # People run their queries as `sales-ops query --named NAME`: with no parameters.
    calls = CALLERS.get(path.stem, []) + ([set()] if path.parent == PEOPLE_SQL else [])
    assert calls, f"{path.name} is neither a people's query nor run by any code"
    for params in calls:
        unused = params - placeholders
        assert not unused, f"a caller passes {sorted(unused)}, which {path.name} never uses"
        sql = render_named(path.stem, "sales_ops", **{p: RELATIONS.get(p, Sql("1")) for p in params})
        assert not PLACEHOLDER.search(code_of(sql)), "a placeholder was left unrendered"
        sqlglot.parse_one(sql, read="trino")  # the rendered rules make valid SQL
