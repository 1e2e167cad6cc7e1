"""Which files a table read may touch, decided before DuckDB reads: Athena partition projection
(`Projection`), the lower bounds a WHERE puts on partition keys (`lower_bounds`, where a projected
table's listing starts) and the files a `"$path" IN (…)` names (`path_filter`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from sales_ops.query.errors import QueryError


class Projection:
    """Athena partition projection, as far as the local engine honours it: `integer`, `date` and
    `enum` keys, `storage.location.template` (or the Hive layout under the table's location).
    https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
    """

    def __init__(self, properties: dict[str, str], table: str, location: str, keys: list[str]) -> None:
        self.keys = keys
        self.props = properties
        template = properties.get("storage.location.template") or (
            location + "/".join(f"{k}=${{{k}}}" for k in self.keys) + "/"
        )
        self.prefix = template.split("${", 1)[0]
        self.first_key = template[len(self.prefix) + 2 :].split("}", 1)[0] if "${" in template else ""
        pattern = re.escape(template if template.endswith("/") else template + "/")
        for key in self.keys:
            pattern = pattern.replace(re.escape(f"${{{key}}}"), f"(?P<{key}>[^/]+)", 1)
        self.pattern = re.compile(pattern + r"[^/]+$")
        for key in self.keys:
            kind = self._prop(key, "type").lower()
            if kind not in ("integer", "date", "enum"):
                raise QueryError(
                    f"table {table}: the local engine projects integer, date and enum "
                    f"partition keys, not {kind or 'untyped'} ({key})"
                )

    def _prop(self, key: str, name: str, default: str = "") -> str:
        return self.props.get(f"projection.{key}.{name}", default).strip()

    def visible(self, uri: str) -> bool:
        match = self.pattern.match(uri)
        return match is not None and all(self._in_range(k, unquote(match[k])) for k in self.keys)

    def _in_range(self, key: str, value: str) -> bool:
        kind = self._prop(key, "type").lower()
        if kind == "enum":
            return value in self._prop(key, "values").split(",")
        low, _, high = self._prop(key, "range").partition(",")
        if kind == "integer":
            digits = int(self._prop(key, "digits", "0") or 0)
            if not value.lstrip("-").isdigit() or len(value.lstrip("-")) < digits:
                return False
            return int(low) <= int(value) <= int(high) and (
                digits == 0 or value == f"{int(value):0{digits}d}"
            )
        fmt = _strptime_format(self._prop(key, "format", "yyyy-MM-dd"))
        try:
            at = datetime.strptime(value, fmt)
            return value == at.strftime(fmt) and _date_bound(low, fmt) <= at <= _date_bound(high, fmt)
        except ValueError:
            return False


_JAVA_DATE = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_RELATIVE = re.compile(r"^NOW(?:\s*([+-])\s*(\d+)\s*(YEAR|MONTH|WEEK|DAY|HOUR|MINUTE|SECOND)S?)?$", re.I)


def _strptime_format(java: str) -> str:
    for token, code in _JAVA_DATE.items():
        java = java.replace(token, code)
    return java


def _date_bound(text: str, fmt: str) -> datetime:
    """A projection range end: a date in the key's format, or NOW[+-N UNIT(S)] (UTC)."""
    relative = _RELATIVE.match(text.strip())
    if not relative:
        return datetime.strptime(text.strip(), fmt)
    now = datetime.now(UTC).replace(tzinfo=None)
    if not relative.group(1):
        return now
    unit = relative.group(3).lower()
    days = {"year": 366, "month": 31, "week": 7}.get(unit)
    delta = (
        timedelta(days=days * int(relative.group(2)))
        if days
        else timedelta(**{unit + "s": int(relative.group(2))})
    )
    return now + delta if relative.group(1) == "+" else now - delta


def lower_bounds(ref: Any, keys: list[str]) -> dict[str, str]:
    """Per partition key (and "$path"), the least value the WHERE reading this table allows (string
    literals): a projected table is listed from there on."""
    select = ref.parent_select
    where = select.args.get("where") if select is not None else None
    if where is None or not keys:
        return {}
    names = {ref.alias_or_name.lower(), ref.name.lower()}
    out = {}
    for key in [*keys, "$path"]:
        bound = _lower_bound(where.this, key, names)
        if bound is not None:
            out[key] = bound
    return out


def _lower_bound(cond: Any, key: str, names: set[str]) -> str | None:
    from sqlglot import exp

    if isinstance(cond, exp.Paren):
        return _lower_bound(cond.this, key, names)
    if isinstance(cond, exp.And | exp.Or):
        bounds = [_lower_bound(c, key, names) for c in cond.flatten()]
        if isinstance(cond, exp.And):
            known = [b for b in bounds if b is not None]
            return max(known) if known else None
        return None if any(b is None for b in bounds) else min(bounds)  # type: ignore[type-var]
    column = cond.this if isinstance(cond, exp.GT | exp.GTE | exp.EQ | exp.In | exp.Between) else None
    if not (isinstance(column, exp.Column) and column.name.lower() == key):
        return None
    if column.table and column.table.lower() not in names:
        return None
    if isinstance(cond, exp.In):
        values = [] if cond.args.get("query") else cond.expressions
    elif isinstance(cond, exp.Between):
        values = [cond.args.get("low")]
    else:
        values = [cond.expression]
    if not values or not all(isinstance(v, exp.Literal) and v.is_string for v in values):
        return None
    return min(v.this for v in values)


def path_filter(ref: Any) -> set[str] | None:
    """Files named by `"$path" IN ('s3://…', …)` (or =) in the WHERE that reads this table."""
    from sqlglot import exp

    select = ref.parent_select
    where = select.args.get("where") if select is not None else None
    if where is None:
        return None
    names = {ref.alias_or_name.lower(), ref.name.lower()}
    chosen: set[str] | None = None
    for cond in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if isinstance(cond, exp.In) and not cond.args.get("query"):
            column, values = cond.this, cond.expressions
        elif isinstance(cond, exp.EQ):
            column, values = cond.this, [cond.expression]
        else:
            continue
        if not (isinstance(column, exp.Column) and column.name == "$path"):
            continue
        if column.table and column.table.lower() not in names:
            continue
        if not all(isinstance(v, exp.Literal) and v.is_string for v in values):
            continue
        paths = {v.this for v in values}
        chosen = paths if chosen is None else chosen & paths
    return chosen
