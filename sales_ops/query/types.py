"""Hive (Glue) column types to DuckDB's and back."""

from __future__ import annotations

import re
from typing import Any

from sales_ops.query.errors import QueryError

_HIVE_SCALARS = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "binary": "BLOB",
}


def hive_to_duckdb(type_: str) -> str:
    """A Glue/Hive column type in DuckDB's spelling."""
    out, rest = _hive_to_duckdb(type_.replace(" ", "").lower())
    if rest:
        raise QueryError(f"unsupported column type {type_!r} in the catalog")
    return out


def _hive_to_duckdb(text: str) -> tuple[str, str]:
    if text.startswith("array<"):
        inner, rest = _hive_to_duckdb(text[6:])
        return f"{inner}[]", rest[1:]
    if text.startswith("map<"):
        key, rest = _hive_to_duckdb(text[4:])
        value, rest = _hive_to_duckdb(rest[1:])
        return f"MAP({key}, {value})", rest[1:]
    if text.startswith("struct<"):
        fields, rest = [], text[7:]
        while not rest.startswith(">"):
            name, rest = rest.split(":", 1)
            type_, rest = _hive_to_duckdb(rest)
            fields.append(f'"{name}" {type_}')
            rest = rest[1:] if rest.startswith(",") else rest
        return f"STRUCT({', '.join(fields)})", rest[1:]
    match = re.match(r"([a-z]+)(\((\d+)(?:,(\d+))?\))?", text)
    if not match:
        raise QueryError(f"unsupported column type {text!r} in the catalog")
    base, rest = match.group(1), text[match.end() :]
    if base == "decimal":
        return f"DECIMAL({match.group(3) or 10},{match.group(4) or 0})", rest
    if base not in _HIVE_SCALARS:
        raise QueryError(f"unsupported column type {base!r} in the catalog")
    return _HIVE_SCALARS[base], rest


def duckdb_to_hive(type_: Any) -> str:
    """A DuckDB result type (DuckDBPyType) as the Hive type Athena's CTAS would register."""
    kind = type_.id
    if kind == "decimal":
        (_, precision), (_, scale) = type_.children
        return f"decimal({precision},{scale})"
    if kind == "list":
        return f"array<{duckdb_to_hive(type_.children[0][1])}>"
    if kind == "struct":
        return "struct<" + ",".join(f"{n}:{duckdb_to_hive(t)}" for n, t in type_.children) + ">"
    if kind == "map":
        return f"map<{duckdb_to_hive(type_.children[0][1])},{duckdb_to_hive(type_.children[1][1])}>"
    simple = {
        "varchar": "string",
        "bigint": "bigint",
        "hugeint": "bigint",  # Trino's sum(bigint) is bigint; DuckDB widens to hugeint
        "ubigint": "bigint",
        "uinteger": "bigint",
        "integer": "int",
        "usmallint": "int",
        "smallint": "smallint",
        "utinyint": "smallint",
        "tinyint": "tinyint",
        "double": "double",
        "float": "float",
        "boolean": "boolean",
        "date": "date",
        "blob": "binary",
        "uuid": "string",
    }
    if kind in simple:
        return simple[kind]
    if kind.startswith("timestamp"):
        return "timestamp"
    raise QueryError(f"cannot store a column of type {type_} in a table")
