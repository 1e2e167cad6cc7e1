"""Schema inference for the local crawler (sales_ops/catalog/inference.py): the Glue JSON
classifier's typing, without an emulator. (Widening rules: tests/test_crawler.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sales_ops.catalog.inference import (
    hive_type,
    infer_schema,
    infer_type,
    merge_types,
    parse_hive_type,
)


@pytest.mark.parametrize(
    ("value", "hive"),
    [
        (True, "boolean"),  # not an int, though bool is one in Python
        (2**31 - 1, "int"),
        (-(2**31), "int"),
        (2**31, "bigint"),
        (-(2**31) - 1, "bigint"),
        (0.5, "double"),
        ("x", "string"),
        (None, "string"),  # nothing seen yet
        ([], "array<string>"),
        ([{"a": 1}, {"b": True}], "array<struct<a:int,b:boolean>>"),
        ({"n": {"m": [1, 2**40]}}, "struct<n:struct<m:array<bigint>>>"),
    ],
)
def test_values_are_typed_as_glue_types_them(value: Any, hive: str) -> None:
    assert hive_type(infer_type(value)) == hive


def test_merging_is_order_independent_and_conflicts_become_strings() -> None:
    values = [1, 2**40, 2.5, None]
    forward = backward = None
    for v in values:
        forward = merge_types(forward, infer_type(v))
    for v in reversed(values):
        backward = merge_types(backward, infer_type(v))
    assert forward == backward == "double"
    assert merge_types(infer_type([1]), infer_type({"a": 1})) == "string"
    assert merge_types(infer_type(True), infer_type(1)) == "string"


def test_infer_schema_keeps_first_seen_order_lowercases_and_skips_what_is_not_a_record() -> None:
    lines = [
        json.dumps({"Order_ID": "o-1", "quantity": 1}).encode(),
        b'{"order_id": "o-2", "quan',  # a torn last line of a ranged read
        b"[1, 2]",  # JSON, but not a record
        json.dumps({"order_id": "o-3", "quantity": 2**35, "extra": {"coupon": "X"}}).encode(),
    ]
    schema: dict[str, Any] = {}
    infer_schema(lines, schema)
    assert {name: hive_type(t) for name, t in schema.items()} == {
        "order_id": "string",
        "quantity": "bigint",
        "extra": "struct<coupon:string>",
    }
    infer_schema([json.dumps({"extra": {"tier": 1}, "new": None}).encode()], schema)
    assert list(schema) == ["order_id", "quantity", "extra", "new"]
    assert hive_type(schema["extra"]) == "struct<coupon:string,tier:int>"


def test_extra_as_json_text_is_a_string_and_wins_over_an_old_struct() -> None:
    """docs/design.md §2.2: the handler writes `extra` as JSON text, which is typed string whatever
    it holds; a lake written before (an object) merged with one written after is string too."""
    new_lines = [
        json.dumps({"order_id": "o-1", "extra": "{}"}).encode(),
        json.dumps({"order_id": "o-2", "extra": json.dumps({"a.b": 1, "A": "x", "a": "y"})}).encode(),
    ]
    schema: dict[str, Any] = {}
    infer_schema(new_lines, schema)
    assert hive_type(schema["extra"]) == "string"
    old_lines = [json.dumps({"order_id": "o-0", "extra": {"coupon_code": "SAVE-10"}}).encode()]
    for first, then in ((old_lines, new_lines), (new_lines, old_lines)):
        schema = {}
        infer_schema(first, schema)
        infer_schema(then, schema)
        assert hive_type(schema["extra"]) == "string"
    # An empty object (all an old lake may hold) and a catalogued struct merge to string as well.
    assert hive_type(merge_types(infer_type({}), infer_type("{}"))) == "string"
    known = parse_hive_type("struct<coupon_code:string>")
    assert merge_types(known, infer_type("{}")) == merge_types(infer_type("{}"), known) == "string"


@pytest.mark.parametrize(
    "hive",
    [
        "string",
        "bigint",
        "array<double>",
        "struct<a:int,b:struct<c:array<string>>>",
        "array<struct<x:boolean>>",
    ],
)
def test_parse_hive_type_inverts_hive_type(hive: str) -> None:
    assert hive_type(parse_hive_type(hive)) == hive


def test_types_it_does_not_write_stay_opaque_but_parse() -> None:
    assert parse_hive_type("decimal(12, 2)") == "decimal(12,2)"
    assert parse_hive_type("map<string,int>") == "map<string,int>"
    # A catalogued struct with a decimal field merges with what is seen, field by field.
    known = parse_hive_type("struct<price:decimal(12,2),sku:string>")
    assert hive_type(merge_types(known, infer_type({"sku": "a", "qty": 1}))) == (
        "struct<price:decimal(12,2),sku:string,qty:int>"
    )
