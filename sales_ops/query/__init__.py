"""One SQL interface, two engines: Athena (pyathena) on AWS, DuckDB over the emulator locally.

- `base`: `QueryResult`, the errors, the `SqlEngine` interface and its shared base;
- `templates`: named SQL (the `sql/` folders of each area) and rendering of `{placeholders}`;
- `types`: Hive (Glue) ↔ DuckDB column types; `pruning`: which files a table read may touch;
- `duckdb`: the local engine; `athena`: the aws engine. `sales_ops.targets` picks one.
"""

from sales_ops.query.athena import AthenaEngine
from sales_ops.query.base import QueryResult, SqlEngine
from sales_ops.query.duckdb import DuckDBEngine
from sales_ops.query.errors import MissingTableError, QueryError, ScanCutoffError
from sales_ops.query.templates import Sql, literal, named_queries, render, render_named

__all__ = [
    "AthenaEngine",
    "DuckDBEngine",
    "MissingTableError",
    "QueryError",
    "QueryResult",
    "ScanCutoffError",
    "Sql",
    "SqlEngine",
    "literal",
    "named_queries",
    "render",
    "render_named",
]
