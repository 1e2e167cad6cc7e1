"""`sales-ops query`, `tables` and `describe`: people's SQL, and the catalog's tables it can name.

Results are printed as data: JSON with exact decimals and ISO-8601 times, CSV and table cells as
text, never a Python repr, and control characters escaped.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import timedelta
from typing import Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from sales_ops.catalog import glue
from sales_ops.cli_common import (
    console,
    data_errors,
    err,
    fail,
    friendly_errors,
    human_size,
    printable,
    running,
    settings,
)
from sales_ops.query import QueryResult, named_queries, render_named

app = typer.Typer()


@app.command("query")
def query_cmd(
    sql: Annotated[str | None, typer.Argument(help="SQL in Athena's dialect (Trino).", metavar="SQL")] = None,
    named: Annotated[
        str | None, typer.Option("--named", help="A named query (see --list).", metavar="NAME")
    ] = None,
    output: Annotated[
        Literal["table", "json", "csv"], typer.Option("--format", help="Output format.")
    ] = "table",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A parameter of the named query (repeatable).", metavar="NAME=VALUE"),
    ] = None,
    list_named: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
) -> None:
    """Run SQL or a named query on Athena (aws) or DuckDB (local); shows bytes scanned and time."""
    from sales_ops.targets import engine_for

    if list_named:
        for query_name, description in named_queries().items():
            console.print(Text(query_name, style="bold") + Text(f"  {description}"), soft_wrap=True)
        return
    if (sql is None) == (named is None):
        raise fail("give either SQL or --named NAME (see `sales-ops query --list`)", 2)
    if param and not named:
        raise fail("--param is for --named queries", 2)
    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--param wants NAME=VALUE, got {item!r}", 2)
        params[key] = value
    with friendly_errors(), data_errors():
        cfg = settings()
        # A named query run by a person is a person's SQL: same limits as any other (see engine).
        text = render_named(named, cfg.database, **params) if named else (sql or "")
        engine = engine_for(running(cfg))
        try:
            result = engine.query(text)
        finally:
            engine.close()
    _print_result(result, output)


def _print_result(result: QueryResult, output: str) -> None:
    import csv

    scanned = human_size(result.bytes_scanned)
    stats = f"{len(result.rows)} row(s), {scanned} scanned, {result.seconds:.2f}s ({result.engine})"
    if output == "json":
        names = _unique(result.columns)
        rows = [dict(zip(names, (_plain(v) for v in row), strict=True)) for row in result.rows]
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        err.print(stats, markup=False)
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in result.rows])
        err.print(stats, markup=False)
    else:
        table = Table()
        for column in result.columns:
            table.add_column(_cell(column))
        for row in result.rows:
            table.add_row(*[_cell(v) for v in row])
        console.print(table)
        console.print(stats, markup=False)


def _cell(value: object) -> Text:
    """A table cell as literal text: no markup, no emoji codes, control characters escaped."""
    if value is None:
        return Text("NULL", style="dim")
    return Text(printable(_text(value)))


@app.command("tables")
def tables_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tables as JSON.")] = False,
) -> None:
    """List the tables of the Glue catalog (what SQL can name), with their format and location."""
    with friendly_errors():
        cfg = running(settings())
        found = [_table_summary(t) for t in glue.list_tables(cfg)]
    if as_json:
        print(json.dumps(found))
        return
    table = Table("table", "format", "columns", "partition keys", "location")
    for t in found:
        row = [t["name"], t["format"], str(len(t["columns"])), ", ".join(t["partition_keys"]), t["location"]]
        table.add_row(*[_cell(v) for v in row])
    console.print(table)
    console.print(f"{len(found)} table(s) in database {cfg.database}", markup=False)


@app.command("describe")
def describe_cmd(
    name: Annotated[str, typer.Argument(help="A table, as `tables` lists it (optionally database.table).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Columns and types of a table, its partition keys, format and location."""
    with friendly_errors():
        cfg = running(settings())
        database, _, table_name = name.lower().rpartition(".")
        found = glue.get_table(cfg, table_name, database or cfg.database)
    if found is None:
        raise fail(f"no table {name!r} in database {database or cfg.database}; see `sales-ops tables`")
    summary = _table_summary(found)
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("column", "type", "partition key")
    for column, type_ in summary["columns"]:
        table.add_row(_cell(column), _cell(type_), "")
    for key, type_ in summary["partition_key_types"]:
        table.add_row(_cell(key), _cell(type_), "yes")
    console.print(table)
    console.print(f"{summary['format']} at {summary['location']}", markup=False)


def _table_summary(table: dict) -> dict:
    sd = table.get("StorageDescriptor", {})
    serde = (sd.get("SerdeInfo", {}).get("SerializationLibrary") or "").lower()
    keys = glue.partition_keys(table)
    return {
        "name": table["Name"],
        "format": "parquet" if "parquet" in serde else "json" if "json" in serde else serde or "?",
        "location": sd.get("Location", ""),
        "columns": glue.table_columns(table),
        "partition_keys": [k for k, _ in keys],
        "partition_key_types": keys,
    }


def _plain(value: object) -> object:
    """JSON-ready values, recursively: exact decimals stay exact, times become ISO-8601, intervals
    ISO-8601 durations, UUIDs text, NaN and ±Infinity the strings "NaN", "Infinity", "-Infinity"
    (JSON has no such numbers)."""
    from datetime import date, datetime, time
    from decimal import Decimal
    from uuid import UUID

    if isinstance(value, Decimal):
        if not value.is_finite():
            return _plain(float(value))
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _duration(delta: timedelta) -> str:
    """An ISO-8601 duration, e.g. P1DT2H3M4.5S (or -P… for a negative interval)."""
    sign, delta = ("-", -delta) if delta < timedelta(0) else ("", delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds + delta.microseconds / 1e6:g}"
    return f"{sign}P{delta.days}DT{hours}H{minutes}M{secs}S"


def _text(value: object) -> str:
    """A value as CSV/table text: NULL-free scalars as is, nested values as JSON, never a Python repr."""
    plain = _plain(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False)
    return str(plain)


def _unique(columns: list[str]) -> list[str]:
    """Column names made unique for JSON objects: a second `x` becomes `x_2`."""
    seen: dict[str, int] = {}
    out = []
    for name in columns:
        n = seen[name] = seen.get(name, 0) + 1
        while n > 1 and f"{name}_{n}" in columns:
            n += 1
        out.append(name if n == 1 else f"{name}_{n}")
    return out
