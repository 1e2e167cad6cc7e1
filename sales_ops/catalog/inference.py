"""JSON schema inference: the Glue JSON classifier's job, done by the local crawler."""

from __future__ import annotations

import json
import re
from typing import Any

_NUMERIC_RANK = {"int": 0, "bigint": 1, "double": 2}
INT_MAX = 2**31 - 1


def infer_type(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -INT_MAX - 1 <= value <= INT_MAX else "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return ("struct", {k: infer_type(v) for k, v in value.items()})
    if isinstance(value, list):
        elem = None
        for item in value:
            elem = merge_types(elem, infer_type(item))
        return ("array", elem)
    return "string"


def merge_types(a: Any, b: Any) -> Any:
    """The narrowest type holding both (int < bigint < double; conflicts become string)."""
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if isinstance(a, str) and isinstance(b, str):
        if a in _NUMERIC_RANK and b in _NUMERIC_RANK:
            return a if _NUMERIC_RANK[a] > _NUMERIC_RANK[b] else b
        return "string"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        fields = dict(a[1])
        for name, type_ in b[1].items():
            fields[name] = merge_types(fields.get(name), type_)
        return ("struct", fields)
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "array":
        return ("array", merge_types(a[1], b[1]))
    return "string"


def hive_type(type_: Any) -> str:
    """Glue/Hive spelling; unknown (null-only or empty-struct) columns are strings until seen."""
    if type_ is None:
        return "string"
    if isinstance(type_, str):
        return type_
    kind, inner = type_
    if kind == "array":
        return f"array<{hive_type(inner)}>"
    if not inner:
        return "string"
    return "struct<" + ",".join(f"{name}:{hive_type(t)}" for name, t in inner.items()) + ">"


def parse_hive_type(text: str) -> Any:
    """The inverse of hive_type for what it writes; other types (map, decimal…) stay opaque."""
    type_, rest = _parse_hive(text.replace(" ", ""))
    return type_ if not rest else text


def _parse_hive(text: str) -> tuple[Any, str]:
    if text.startswith("array<"):
        inner, rest = _parse_hive(text[len("array<") :])
        return ("array", inner), rest[1:]  # drop ">"
    if text.startswith("struct<"):
        fields: dict[str, Any] = {}
        rest = text[len("struct<") :]
        while not rest.startswith(">"):
            name, rest = rest.split(":", 1)
            fields[name], rest = _parse_hive(rest)
            rest = rest[1:] if rest.startswith(",") else rest
        return ("struct", fields), rest[1:]
    match = re.match(r"[a-z0-9_]+(\([0-9, ]+\))?", text)
    end = match.end() if match else len(text)
    return text[:end], text[end:]


def _to_json(type_: Any) -> Any:
    if isinstance(type_, tuple):
        kind, inner = type_
        if kind == "struct":
            return {"struct": [[k, _to_json(v)] for k, v in inner.items()]}
        return {"array": _to_json(inner)}
    return type_


def _from_json(data: Any) -> Any:
    if isinstance(data, dict):
        if "struct" in data:
            return ("struct", {k: _from_json(v) for k, v in data["struct"]})
        return ("array", _from_json(data["array"]))
    return data


def infer_schema(lines: list[bytes], schema: dict[str, Any]) -> None:
    """Merge the top-level fields of these JSON lines into `schema` (ordered: first seen first)."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line of a ranged read, or a bad line: neither defines columns
        if not isinstance(record, dict):
            continue
        for name, value in record.items():
            schema[name.lower()] = merge_types(schema.get(name.lower()), infer_type(value))
