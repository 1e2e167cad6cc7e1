"""Hive (Glue) column types to DuckDB's and back (sales_ops/query/types.py), checked with real DuckDB."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from sales_ops.query import QueryError
from sales_ops.query.types import duckdb_to_hive, hive_to_duckdb

# Types the catalog holds, spelled as Glue spells them (what a CTAS on Athena registers).
CANONICAL = [
    "string",
    "int",
    "bigint",
    "smallint",
    "tinyint",
    "double",
    "float",
    "boolean",
    "date",
    "timestamp",
    "binary",
    "decimal(12,2)",
    "decimal(38,0)",
    "array<string>",
    "map<string,bigint>",
    "struct<sku:string,qty:int>",
    "array<struct<a:int,b:array<decimal(12,2)>>>",
    "map<string,struct<x:double>>",
]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


def duck_type(con: duckdb.DuckDBPyConnection, spelled: str) -> duckdb.DuckDBPyType:
    """The type DuckDB itself makes of a column declared as `spelled`."""
    return con.sql(f"SELECT CAST(NULL AS {spelled}) AS c").types[0]


@pytest.mark.parametrize("hive", CANONICAL)
def test_every_catalog_type_round_trips_through_duckdb(con: duckdb.DuckDBPyConnection, hive: str) -> None:
    assert duckdb_to_hive(duck_type(con, hive_to_duckdb(hive))) == hive


@pytest.mark.parametrize(
    ("hive", "duck"),
    [
        ("STRING", "VARCHAR"),
        ("varchar(20)", "VARCHAR"),
        ("char(1)", "VARCHAR"),
        ("integer", "INTEGER"),
        ("decimal", "DECIMAL(10,0)"),  # Hive's default precision and scale
        ("decimal(12, 2)", "DECIMAL(12,2)"),
        ("struct<a:int, b:string>", 'STRUCT("a" INTEGER, "b" VARCHAR)'),
        ("array<array<int>>", "INTEGER[][]"),
        ("map<string,array<int>>", "MAP(VARCHAR, INTEGER[])"),
    ],
)
def test_spellings_glue_accepts_map_to_duckdb(hive: str, duck: str) -> None:
    assert hive_to_duckdb(hive) == duck


@pytest.mark.parametrize("hive", ["uniontype<int,string>", "interval", "int extra", "array<int>>"])
def test_unsupported_catalog_types_are_a_query_error(hive: str) -> None:
    with pytest.raises(QueryError, match="unsupported column type"):
        hive_to_duckdb(hive)


@pytest.mark.parametrize(
    ("duck", "hive"),
    [
        ("HUGEINT", "bigint"),  # DuckDB's sum(bigint); Trino's is bigint
        ("UBIGINT", "bigint"),
        ("UINTEGER", "bigint"),
        ("USMALLINT", "int"),
        ("UTINYINT", "smallint"),
        ("UUID", "string"),
        ("TIMESTAMP WITH TIME ZONE", "timestamp"),
        ("TIMESTAMP_MS", "timestamp"),
    ],
)
def test_duckdb_only_types_are_stored_as_the_nearest_hive_type(
    con: duckdb.DuckDBPyConnection, duck: str, hive: str
) -> None:
    assert duckdb_to_hive(duck_type(con, duck)) == hive


@pytest.mark.parametrize("duck", ["INTERVAL", "TIME", "UNION(n INTEGER, s VARCHAR)"])
def test_types_a_table_cannot_hold_are_refused(con: duckdb.DuckDBPyConnection, duck: str) -> None:
    with pytest.raises(QueryError, match="cannot store a column of type"):
        duckdb_to_hive(duck_type(con, duck))
