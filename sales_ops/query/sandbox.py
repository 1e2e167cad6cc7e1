"""The sandbox for people's SQL on the local engine: no file or network access beyond the pipeline's
bucket, and no writes into the zones the pipeline manages (docs/design.md §2.6, Access).

Athena reads and writes S3 only; DuckDB can read any local file (read_text, read_csv, ATTACH),
fetch any URL through httpfs, INSTALL/LOAD extensions and COPY anywhere. So the engine's connection
is locked down for good (`lock_down`), DuckDB's own commands are refused by name before parsing
(`COMMAND_WORDS`), and so are its file readers (`FILE_READERS`): SQL reads the catalog's tables,
never files by path.

Trust is by entry point (`sales_ops/query/base.py`): `query()` runs people's SQL (untrusted), which
may write only into the pipeline's bucket and never into `MANAGED_ZONES`, nor drop a table located
there; `execute()` and `named()` run the pipeline's own SQL, which may.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from sales_ops.query.errors import QueryError
from sales_ops.settings import CURATED_PREFIX, ERROR_PREFIX, RAW_PREFIX, Settings

# Zones of the bucket only the pipeline writes: Firehose (raw, errors), compaction and rollups.
MANAGED_ZONES = (RAW_PREFIX.split("/")[0] + "/", ERROR_PREFIX.split("/")[0] + "/", CURATED_PREFIX)
# Statements of DuckDB (and SQL) that the local engine never runs, refused by name before parsing.
COMMAND_WORDS = frozenset(
    [
        "INSTALL",
        "LOAD",
        "ATTACH",
        "DETACH",
        "COPY",
        "SET",
        "RESET",
        "PRAGMA",
        "CALL",
        "EXPORT",
        "IMPORT",
        "CHECKPOINT",
        "USE",
        "SHOW",
        "DESCRIBE",
        "SUMMARIZE",
        "UPDATE",
        "DELETE",
        "ALTER",
        "TRUNCATE",
        "MERGE",
        "VACUUM",
        "ANALYZE",
        "EXPLAIN",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "ABORT",
        "START",
        "GRANT",
        "REVOKE",
        "FROM",
        "PIVOT",
        "UNPIVOT",
    ]
)
# DuckDB's file readers: refused like the other functions Athena lacks (athena_rules.py).
FILE_READERS = frozenset({"read_json", "read_json_auto", "read_parquet", "read_csv", "read_csv_auto", "glob"})


def lock_down(con: Any, allowed: list[str]) -> None:
    """No file or network access beyond `allowed` (prefixes: the bucket, the spill dir), for good.

    With `enable_external_access = false` only `allowed_directories` stay reachable (prefix match,
    remote URLs included), and `lock_configuration` stops SQL from changing that back.
    See https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview.
    """
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def first_word(tokens: list[Any] | None) -> str:
    """The statement's keyword as written (INSTALL, SHOW…), for refusals; sqlglot may misname it.
    `tokens`: the statement's Trino tokens, None when it does not tokenize."""
    return tokens[0].text.upper() if tokens else "this"


def command_hint(kind: str) -> str:
    """Where a refused command's answer is found instead (` (…)`, or "")."""
    hints = {"SHOW": "list tables with `sales-ops tables`", "DESCRIBE": "use `sales-ops describe TABLE`"}
    return f" ({hints[kind]})" if kind in hints else ""


def check_write(settings: Settings, location: str, trusted: bool, what: str) -> None:
    """Writes go to the pipeline's bucket only; people's SQL never into its managed zones."""
    parsed = urlparse(location)
    if parsed.scheme != "s3" or parsed.netloc != settings.bucket:
        raise QueryError(f"{what}: writes go to {settings.s3_uri()} only, not {location}")
    key = parsed.path.lstrip("/")
    if any(part in (".", "..") for part in key.split("/")):
        raise QueryError(f"{what}: '.' and '..' are not allowed in a location ({location})")
    zone = next((z for z in MANAGED_ZONES if key.startswith(z)), None)
    if zone and not trusted:
        raise QueryError(
            f"{what}: {settings.s3_uri(zone)} is managed by the pipeline; only its own "
            "compaction and rollups write there"
        )


def check_drop(location: str, trusted: bool, what: str) -> None:
    """People's SQL never drops a table located in a managed zone."""
    key = urlparse(location).path.lstrip("/")
    if not trusted and any(key.startswith(zone) for zone in MANAGED_ZONES):
        raise QueryError(f"{what}: the table is managed by the pipeline")


def permission_message(exc: Exception, bucket: str) -> str:
    """DuckDB's permission error, said as what it means here."""
    target = re.search(r'Cannot access (?:file|directory) "([^"]*)"', str(exc))
    what = f" ({target.group(1)})" if target else ""
    return f"refused{what}: SQL here reads and writes only {bucket}, no local files, URLs or extensions"
