"""SQL is written once, in Athena's dialect (Trino; docs/design.md §2.6). The local engine runs it
the way Athena would see it:
- sqlglot transpiles the statement from Trino to DuckDB;
- every table name resolves through the Glue catalog: its columns and types, its partitions and
  their S3 locations. A JSON table becomes `read_json(files, columns=…)` (the catalog's schema, as
  Athena's SerDe uses it), a Parquet table `read_parquet(files)`, both with hive partitioning so
  that filters on partition keys prune files. Only files under registered partitions are visible,
  as on Athena; `"$path"` is the file's URI, and `"$path" IN (…)` selects just those files;
- CTAS with `external_location`/`partitioned_by` becomes `COPY … TO … (FORMAT parquet,
  PARTITION_BY …)` plus the Glue table and partitions Athena would register; `INSERT INTO` a
  partitioned Parquet table becomes a COPY into the table's location plus the new partitions.

Athena's rules, kept here so that local runs fail where Athena would (issue 16):
- a CTAS with `external_location` is refused when the workgroup enforces its configuration, as the
  stack's does ("Considerations and limitations for CTAS queries", Athena user guide);
- one INSERT or CTAS may write at most 100 partitions (HIVE_TOO_MANY_OPEN_PARTITIONS; "Using CTAS
  and INSERT INTO to work around the 100 partition limit", Athena user guide);
- functions DuckDB has and Athena (Trino) lacks are refused by name (`DUCKDB_ONLY_FUNCTIONS`): sqlglot
  would otherwise pass them through and the SQL would run here and fail on Athena.

Bytes scanned, locally: DuckDB's HTTP log (`enable_logging('HTTP')`) records every request httpfs
makes; the engine sums the Content-Length of the GET responses of each statement. That is exactly
the bytes read from S3 (Parquet: only the column chunks and footers fetched; JSON: whole files), the
same notion as Athena's DataScannedInBytes. The external file cache is off so that a repeated query
really reads again (and sees new data).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sales_ops.catalog import glue
from sales_ops.query.base import QueryResult, _EngineBase
from sales_ops.query.errors import MissingTableError, QueryError, ScanCutoffError
from sales_ops.query.pruning import Projection, lower_bounds, path_filter
from sales_ops.query.templates import literal
from sales_ops.query.types import duckdb_to_hive, hive_to_duckdb
from sales_ops.settings import (
    ATHENA_RESULTS_PREFIX,
    CURATED_PREFIX,
    ERROR_PREFIX,
    LOCAL_CREDENTIALS,
    RAW_PREFIX,
    Settings,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Zones of the bucket only the pipeline writes: Firehose (raw, errors), compaction and rollups.
MANAGED_ZONES = (RAW_PREFIX.split("/")[0] + "/", ERROR_PREFIX.split("/")[0] + "/", CURATED_PREFIX)
# What Athena's DML/DDL subset the engine runs starts with (anything else is refused by name).
STATEMENT_KINDS = ("SELECT", "WITH", "VALUES", "(", "INSERT", "CREATE", "DROP")
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
# sqlglot logs "Falling back to parsing as a 'Command'" for what it cannot parse; we refuse those
# statements with our own message.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _one_row(cursor: Any) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (an aggregate, a COPY)."""
    row = cursor.fetchone()
    if row is None:
        raise QueryError("the local engine expected a row and got none")
    return row


MAX_PARTITIONS_PER_WRITE = 100  # Athena: open partition writers per CTAS or INSERT INTO
# DuckDB functions the project could reach for by habit that Athena engine 3 does not have (each
# has a Trino spelling: date_format, regexp_like, max_by, array_join(array_agg()), approx_percentile…).
# The file readers are refused too: user SQL reads the catalog's tables, never files by path.
DUCKDB_ONLY_FUNCTIONS = frozenset(
    {
        "strftime", "strptime", "epoch", "epoch_ms", "epoch_us", "today", "datediff", "date_sub",
        "list_filter", "list_transform", "list_value", "list_aggregate", "string_split", "str_split",
        "regexp_matches", "struct_pack", "len", "ifnull", "printf", "median", "quantile",
        "quantile_cont", "arg_max", "arg_min", "string_agg", "group_concat",
        "read_json", "read_json_auto", "read_parquet", "read_csv", "read_csv_auto", "glob",
    }
)  # fmt: skip


def httpfs_extension_path() -> Path:
    """The httpfs build shipped in the duckdb-extension-httpfs wheel (no download, docs/design.md §6)."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).resolve().parent / "extensions"
    path = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.exists():
        raise QueryError(f"httpfs for DuckDB {duckdb.__version__} not found under {root}")
    return path


@dataclass
class _Table:
    database: str
    name: str
    glue: dict[str, Any]
    columns: list[tuple[str, str]]
    partition_keys: list[tuple[str, str]]
    location: str
    format: str  # json | parquet
    partitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def key_names(self) -> list[str]:
        return [k for k, _ in self.partition_keys]


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a", "s3n"):
        raise QueryError(f"not an S3 location: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def _dir(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_BYTES_SQL = """
SELECT
  coalesce(sum(CASE WHEN request.type = 'GET' AND response.status LIKE '%20%' THEN
    TRY_CAST(list_filter(map_entries(response.headers), h -> lower(h.key) = 'content-length')[1].value
             AS BIGINT) END), 0),
  coalesce(sum(CASE WHEN request.type IN ('PUT', 'POST') THEN request.request_body_length END), 0)
FROM duckdb_logs_parsed('HTTP')
"""


class DuckDBEngine(_EngineBase):
    """DuckDB over S3 (the emulator, or AWS with the session's credentials), Glue as catalog."""

    name = "duckdb"

    def __init__(
        self,
        settings: Settings,
        memory_limit: str | None = None,
        threads: int | None = None,
        enforce_workgroup: bool = True,
        leave_failed_writes: bool = False,
        max_partitions_per_write: int = MAX_PARTITIONS_PER_WRITE,
    ) -> None:
        import duckdb

        self.settings = settings
        # Athena's INSERT INTO only adds files, and a failed one may leave some behind ("Athena
        # troubleshooting"): with this set, a write that fails after writing keeps its files, as
        # Athena may, so that callers are tested against it (docs/design.md §2.5, "Fresh names").
        self.leave_failed_writes = leave_failed_writes
        # Athena's limit; a test may set a small one to reach it with a few dates of data.
        self.max_partitions_per_write = max_partitions_per_write
        # The stack's workgroup enforces its configuration (infra/template.yaml): so does this one.
        self.enforce_workgroup = enforce_workgroup
        self.glue = settings.client("glue")
        self.s3 = settings.client("s3")
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_persistent_secrets": False,  # no ~/.duckdb/stored_secrets: nothing local to read
        }
        if memory_limit:
            config["memory_limit"] = memory_limit
        # Remote reads wait on the network more than they compute: more threads than cores help.
        config["threads"] = threads or max(8, os.cpu_count() or 1)
        self.con = duckdb.connect(config=config)
        self._lock = threading.RLock()
        self._views = 0
        self.con.execute(f"LOAD '{httpfs_extension_path()}'")
        self.con.execute(self._secret_sql())
        self.con.execute("SET TimeZone = 'UTC'")  # Athena's sessions are UTC too
        self.con.execute("SET enable_external_file_cache = false")
        # Sizes from HEAD are cached per URL: every object we read is immutable (Firehose and the
        # compaction write new keys, never overwrite), so a later query skips the HEAD.
        self.con.execute("SET enable_http_metadata_cache = true")
        self.con.execute("SET parquet_metadata_cache = true")
        # Keys are passed as they are: a file list is never a pattern. Without this the readers
        # glob every path (`*`, `?`, `[` are wildcards) and take `?` as the start of query
        # parameters: a raw key `…/evil[1].json` matched nothing ("No files found that match the
        # pattern"), `…/*` the whole hour, read twice (issue 23). The setting is httpfs's "Disable
        # Globs and Query Parameters on S3 URLs"; nothing here globs S3 (listings are boto3's).
        self.con.execute("SET s3_url_compatibility_mode = true")
        spill = settings.state_path("duckdb", "spill")
        self.con.execute(f"SET temp_directory = '{spill}'")
        self.con.execute("CALL enable_logging('HTTP')")
        self._lock_down(f"{spill}/")

    def _lock_down(self, spill: str) -> None:
        """No file or network access beyond the pipeline's bucket, for good (docs/design.md §2.6).

        Athena can read and write S3 only; DuckDB can read any local file (read_text, read_csv,
        ATTACH), fetch any URL through httpfs, INSTALL/LOAD extensions and COPY anywhere. With
        `enable_external_access = false` only `allowed_directories` stay reachable (prefix match,
        remote URLs included), and `lock_configuration` stops SQL from changing that back.
        See https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview.
        """
        bucket = _dir(self.settings.s3_uri())
        self.con.execute("SET allowed_directories = ?", [[bucket, spill]])
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def _secret_sql(self) -> str:
        if self.settings.is_local:
            endpoint = urlparse(self.settings.endpoint_url or "")
            key, secret = LOCAL_CREDENTIALS
            return (
                f"CREATE OR REPLACE SECRET sales_ops_s3 (TYPE s3, KEY_ID '{key}', SECRET '{secret}', "
                f"REGION '{self.settings.region}', ENDPOINT '{endpoint.netloc}', URL_STYLE 'path', "
                f"USE_SSL {str(endpoint.scheme == 'https').lower()})"
            )
        creds = self.settings._session.get_credentials().get_frozen_credentials()
        token = f", SESSION_TOKEN '{creds.token}'" if creds.token else ""
        return (
            f"CREATE OR REPLACE SECRET sales_ops_s3 (TYPE s3, KEY_ID '{creds.access_key}', "
            f"SECRET '{creds.secret_key}'{token}, REGION '{self.settings.region}')"
        )

    # public interface -------------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    # statements -------------------------------------------------------------------------------
    def _run(self, sql: str, trusted: bool) -> QueryResult:
        import duckdb
        import sqlglot
        from sqlglot.errors import ParseError, TokenError, UnsupportedError

        started = time.monotonic()
        views: dict[str, str] = {}
        with self._lock:
            try:
                kind = _first_word(sql)
                if kind in COMMAND_WORDS:  # before parsing: sqlglot misreads some (INSTALL x → alias)
                    raise QueryError(f"the local engine does not run {kind} statements{_hint(kind)}", sql)
                _refuse_duckdb_only_functions(sql)
                statements = [s for s in sqlglot.parse(sql, read="trino") if s is not None]
                if not statements:
                    raise QueryError("empty statement", sql)
                if kind not in STATEMENT_KINDS:
                    raise QueryError(f"the local engine does not run {kind} statements", sql)
                if len(statements) > 1:  # as Athena: one statement per query
                    raise QueryError(f"{len(statements)} statements given: run one statement at a time", sql)
                result = self._statement(statements[0], views, trusted, kind)
            except (ParseError, TokenError) as exc:
                raise QueryError(_parse_message(exc), sql) from None
            except UnsupportedError as exc:
                raise QueryError(f"cannot run this in DuckDB: {exc}", sql) from None
            except RecursionError:
                raise QueryError("the statement is nested too deeply to parse", sql) from None
            except duckdb.PermissionException as exc:
                raise QueryError(_permission_message(exc, self.settings.s3_uri()), sql) from None
            except duckdb.Error as exc:
                raise _duckdb_error(exc, views, sql) from None
            finally:
                for view in views:
                    self.con.execute(f"DROP VIEW IF EXISTS {_quote(view)}")
        result.seconds = time.monotonic() - started
        return result

    def _statement(self, statement: Any, views: dict[str, str], trusted: bool, kind: str) -> QueryResult:
        from sqlglot import exp

        if isinstance(statement, exp.Insert):
            return self._measured(lambda: self._insert(statement, views, trusted))
        if isinstance(statement, exp.Create) and statement.kind == "TABLE" and statement.expression:
            if statement.args.get("temporary") or _has_temporary(statement):
                raise QueryError("CREATE TEMP TABLE: Athena has no temporary tables; use a WITH clause")
            return self._measured(lambda: self._ctas(statement, views, trusted))
        if isinstance(statement, exp.Drop) and statement.kind == "TABLE":
            return self._drop(statement, trusted)
        if isinstance(statement, exp.Query):
            return self._measured(lambda: self._select(statement, views))
        hint = {
            "SHOW": " (list tables with `sales-ops tables`)",
            "DESCRIBE": " (use `sales-ops describe TABLE`)",
        }
        raise QueryError(f"the local engine does not run {kind} statements{hint.get(kind, '')}")

    def _check_write(self, location: str, trusted: bool, what: str) -> None:
        """Writes go to the pipeline's bucket only; people's SQL never into its managed zones."""
        parsed = urlparse(location)
        if parsed.scheme != "s3" or parsed.netloc != self.settings.bucket:
            raise QueryError(f"{what}: writes go to {self.settings.s3_uri()} only, not {location}")
        key = parsed.path.lstrip("/")
        if any(part in (".", "..") for part in key.split("/")):
            raise QueryError(f"{what}: '.' and '..' are not allowed in a location ({location})")
        zone = next((z for z in MANAGED_ZONES if key.startswith(z)), None)
        if zone and not trusted:
            raise QueryError(
                f"{what}: {self.settings.s3_uri(zone)} is managed by the pipeline; only its own "
                "compaction and rollups write there"
            )

    def _measured(self, run: Callable[[], tuple[list[str], list[tuple]]]) -> QueryResult:
        self.con.execute("CALL truncate_duckdb_logs()")
        columns, rows = run()
        read, written = self._bytes_so_far()
        self._enforce_cutoff(read)
        return QueryResult(columns, rows, read, 0.0, self.name, written)

    def _bytes_so_far(self) -> tuple[int, int]:
        """Bytes read from and written to S3 since the statement began (the HTTP log)."""
        read, written = _one_row(self.con.execute(_BYTES_SQL))
        return int(read), int(written)

    def _enforce_cutoff(self, read: int) -> None:
        """As the workgroup's BytesScannedCutoffPerQuery: more than the cutoff fails the statement.

        Athena cancels while it reads; here the figure is known once DuckDB has read, so a SELECT
        fails after the fact and a write is checked before its partitions are registered (_copy).
        """
        if read > self.settings.scan_cutoff_bytes:
            raise ScanCutoffError(read, self.settings.scan_cutoff_bytes)

    def _select(self, statement: Any, views: dict[str, str]) -> tuple[list[str], list[tuple]]:
        self._resolve(statement, views)
        cursor = self.con.execute(self._duck(statement))
        columns = [d[0] for d in cursor.description or []]
        return columns, [tuple(row) for row in cursor.fetchall()]

    def _insert(self, statement: Any, views: dict[str, str], trusted: bool) -> tuple[list[str], list[tuple]]:
        from sqlglot import exp

        target = statement.this
        names = None
        if isinstance(target, exp.Schema):
            names = [c.name.lower() for c in target.expressions]
            target = target.this
        table = self._table(target.db or self.settings.database, target.name)
        self._check_write(table.location, trusted, f"INSERT INTO {table.qualified}")
        if table.format != "parquet":
            raise QueryError(f"INSERT INTO {table.qualified}: the local engine writes Parquet tables only")
        body = statement.expression
        self._resolve(body, views)
        columns = table.columns + table.partition_keys
        source = self.con.sql(self._duck(body))
        wanted = names or [c for c, _ in columns]
        if len(source.columns) != len(wanted):
            raise QueryError(
                f"INSERT INTO {table.qualified}: the query has {len(source.columns)} columns, "
                f"the table expects {len(wanted)}"
            )
        aliases = ", ".join(f"c{i}" for i in range(len(wanted)))
        position = {name: i for i, name in enumerate(wanted)}
        projection = ", ".join(
            f"CAST({f'c{position[c]}' if c in position else 'NULL'} AS {hive_to_duckdb(t)}) AS {_quote(c)}"
            for c, t in columns
        )
        select = f"SELECT {projection} FROM ({self._duck(body)}) AS __src({aliases})"
        count = self._copy(select, table.location, [c for c, _ in table.partition_keys], table)
        return ["rows"], [(count,)]

    def _ctas(self, statement: Any, views: dict[str, str], trusted: bool) -> tuple[list[str], list[tuple]]:
        from sqlglot import exp

        target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        database, name = (target.db or self.settings.database).lower(), target.name.lower()
        props = _ctas_properties(statement)
        if props.get("external_location"):  # where it would write first: the security reason wins
            self._check_write(_dir(props["external_location"]), trusted, f"CREATE TABLE {database}.{name}")
        if props.get("external_location") and self.enforce_workgroup:
            raise QueryError(
                f"CREATE TABLE {name}: the workgroup {self.settings.workgroup!r} enforces its "
                "configuration, so Athena fails a CTAS that specifies external_location; leave it "
                "out (the table goes under the workgroup's results location) or INSERT INTO a table "
                "registered at the location you want"
            )
        if props.get("format", "parquet").lower() != "parquet":
            raise QueryError(f"CREATE TABLE {name}: the local engine writes format = 'PARQUET' only")
        location = _dir(
            props.get("external_location")
            or self.settings.s3_uri(f"{ATHENA_RESULTS_PREFIX}tables/{uuid.uuid4()}/")
        )
        self._check_write(location, trusted, f"CREATE TABLE {database}.{name}")
        if glue.get_table(self.settings, name, database) is not None:
            raise QueryError(f"Table {database}.{name} already exists")
        bucket, prefix = _split_s3(location)
        if self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
            raise QueryError(
                f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{database}.{name}' "
                f"already exists: {location}"
            )
        body = statement.expression
        self._resolve(body, views)
        source = self.con.sql(self._duck(body))
        hive = [(c.lower(), duckdb_to_hive(t)) for c, t in zip(source.columns, source.types, strict=True)]
        partitioned = [p.lower() for p in props.get("partitioned_by", [])]
        if partitioned and [c for c, _ in hive[-len(partitioned) :]] != partitioned:
            raise QueryError("partitioned_by columns must be the last columns of the SELECT, in that order")
        data_columns = hive[: len(hive) - len(partitioned)]
        keys = hive[len(data_columns) :]
        table_input = glue.parquet_table_input(name, data_columns, location, keys)
        glue.put_table(self.settings, table_input, database)
        table = self._table(database, name)
        projection = ", ".join(
            f"CAST({_quote(c)} AS {hive_to_duckdb(t)}) AS {_quote(c)}" for c, t in data_columns + keys
        )
        try:
            select = f"SELECT {projection} FROM ({self._duck(body)})"
            count = self._copy(select, location, partitioned, table, props.get("write_compression"))
        except BaseException:  # as Athena: a failed CTAS leaves no table behind
            glue.delete_table(self.settings, name, database)
            raise
        return ["rows"], [(count,)]

    def _copy(
        self,
        select: str,
        location: str,
        partition_by: list[str],
        table: _Table,
        compression: str | None = None,
    ) -> int:
        """COPY the rows to Parquet under location; register the partitions written. Returns rows."""
        location = _dir(location)
        compression = (
            compression or table.glue.get("Parameters", {}).get("parquet.compression") or "snappy"
        ).lower()
        if compression not in ("snappy", "zstd", "gzip", "uncompressed", "lz4"):
            raise QueryError(f"unsupported Parquet compression {compression!r}")
        if partition_by:
            keys = ", ".join(_quote(k) for k in partition_by)
            options = f"FORMAT parquet, COMPRESSION {compression}, PARTITION_BY ({keys}), "
            options += "FILENAME_PATTERN 'part-{uuid}', APPEND"
            count, files = _one_row(
                self.con.execute(f"COPY ({select}) TO '{location}' ({options}, RETURN_FILES)")
            )
            written = {f.rsplit("/", 1)[0] for f in files}
            self._enforce_cutoff_of_write(files)
            if len(written) > self.max_partitions_per_write:
                self._delete(files)  # Athena fails the statement; leave nothing registered
                raise QueryError(
                    f"HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of {self.max_partitions_per_write} open "
                    f"writers for partitions/buckets ({len(written)} partitions in one statement)"
                )
            self._register_partitions(table, location, files)
            return int(count)
        path = f"{location}part-{uuid.uuid4()}.parquet"
        options = f"FORMAT parquet, COMPRESSION {compression}"
        (count,) = _one_row(self.con.execute(f"COPY ({select}) TO '{path}' ({options})"))
        self._enforce_cutoff_of_write([path])
        return int(count)

    def _enforce_cutoff_of_write(self, files: list[str]) -> None:
        """A write that read past the cutoff was cancelled: leave none of its files behind."""
        try:
            self._enforce_cutoff(self._bytes_so_far()[0])
        except ScanCutoffError:
            self._delete(files)
            raise

    def _delete(self, files: list[str]) -> None:
        """Remove a failed write's files (unless told to leave them, as Athena may)."""
        if self.leave_failed_writes:
            return
        for i in range(0, len(files), 1000):
            bucket = _split_s3(files[0])[0]
            keys = [{"Key": _split_s3(f)[1]} for f in files[i : i + 1000]]
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def _register_partitions(self, table: _Table, location: str, files: list[str]) -> None:
        """Add the partitions the write created, as Athena's INSERT/CTAS does."""
        keys = [k for k, _ in table.partition_keys]
        found: dict[tuple[str, ...], str] = {}
        for file in files:
            directory = file[len(location) :].rsplit("/", 1)[0]
            values = dict(unquote(seg).split("=", 1) for seg in directory.split("/") if "=" in seg)
            found[tuple(values[k] for k in keys)] = f"{location}{directory}/"
        known = {tuple(p["Values"]) for p in table.partitions}
        entries = [
            glue.partition_input(table.glue, list(values), loc)
            for values, loc in sorted(found.items())
            if values not in known
        ]
        glue.put_partitions(self.settings, table.glue, entries)

    def _drop(self, statement: Any, trusted: bool) -> QueryResult:
        """As Athena's DROP TABLE on an external table: the catalog entry goes, the data stays."""
        targets = statement.args.get("tables") or [statement.this]
        for target in targets:
            database, name = (target.db or self.settings.database).lower(), target.name.lower()
            found = glue.get_table(self.settings, name, database)
            if found is None:
                if not statement.args.get("exists"):
                    raise MissingTableError(f"{database}.{name}")
                continue
            location = found.get("StorageDescriptor", {}).get("Location", "")
            key = urlparse(location).path.lstrip("/")
            if not trusted and any(key.startswith(zone) for zone in MANAGED_ZONES):
                raise QueryError(f"DROP TABLE {database}.{name}: the table is managed by the pipeline")
            glue.delete_table(self.settings, name, database)
        return QueryResult([], [], 0, 0.0, self.name)

    # resolution -------------------------------------------------------------------------------
    def _duck(self, node: Any) -> str:
        from sqlglot.errors import ErrorLevel

        return node.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)

    def _resolve(self, node: Any, views: dict[str, str], database: str | None = None, depth: int = 0) -> None:
        """Point every catalog table the statement reads at a temporary view over its S3 files.

        A catalog view (an Athena view: Glue VIRTUAL_VIEW) is replaced by its own SQL as a subquery,
        whose tables are resolved the same way; names without a database in it are the view's.
        """
        from sqlglot import exp

        ctes = {cte.alias_or_name.lower() for cte in node.find_all(exp.CTE)}
        wants_path = any(c.name == "$path" for c in node.find_all(exp.Column))
        for ref in list(node.find_all(exp.Table)):
            if not isinstance(ref.this, exp.Identifier):
                continue  # a table function
            name = ref.name.lower()
            if not ref.db and name in ctes:
                continue
            catalog_entry = self._catalog_entry(ref.db or database or self.settings.database, name)
            definition = glue.view_sql(catalog_entry)
            if definition is not None:
                self._inline_view(ref, catalog_entry, definition, views, depth)
                continue
            table = self._table(catalog_entry["DatabaseName"], name, catalog_entry)
            view = self._view(table, path_filter(ref), wants_path, lower_bounds(ref, table.key_names))
            views[view] = table.qualified
            alias = ref.alias or name
            ref.set("this", exp.to_identifier(view, quoted=True))
            ref.set("db", None)
            ref.set("catalog", None)
            ref.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))

    def _catalog_entry(self, database: str, name: str) -> dict[str, Any]:
        """The Glue table or view (MissingTableError when there is none)."""
        database, name = database.lower(), name.lower()
        if database == "awsdatacatalog":
            database = self.settings.database
        glue_table = glue.get_table(self.settings, name, database)
        if glue_table is None:
            raise MissingTableError(f"{database}.{name}")
        glue_table["DatabaseName"] = database
        return glue_table

    def _inline_view(
        self, ref: Any, entry: dict[str, Any], definition: str, views: dict[str, str], depth: int
    ) -> None:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ParseError

        qualified = f"{entry['DatabaseName']}.{entry['Name'].lower()}"
        if depth >= MAX_VIEW_DEPTH:
            raise QueryError(f"view {qualified}: views nested more than {MAX_VIEW_DEPTH} deep")
        try:
            body = sqlglot.parse_one(definition, read="trino")
        except ParseError as exc:
            raise QueryError(f"view {qualified}: {_parse_message(exc)}") from None
        self._resolve(body, views, entry["DatabaseName"], depth + 1)
        alias = exp.TableAlias(this=exp.to_identifier(ref.alias or ref.name.lower()))
        ref.replace(exp.Subquery(this=body, alias=alias))

    def _table(self, database: str, name: str, glue_table: dict[str, Any] | None = None) -> _Table:
        glue_table = glue_table or self._catalog_entry(database, name)
        database, name = glue_table["DatabaseName"], name.lower()
        if glue.view_sql(glue_table) is not None:
            raise QueryError(f"{database}.{name} is a view: the local engine writes tables only")
        sd = glue_table["StorageDescriptor"]
        serde = (sd.get("SerdeInfo", {}).get("SerializationLibrary") or "").lower()
        classification = (glue_table.get("Parameters", {}).get("classification") or "").lower()
        fmt = "parquet" if "parquet" in serde or classification == "parquet" else "json"
        if fmt == "json" and "json" not in serde and classification != "json":
            raise QueryError(f"table {database}.{name}: the local engine reads JSON and Parquet tables only")
        keys = glue.partition_keys(glue_table)
        return _Table(
            database=database,
            name=name,
            glue=glue_table,
            columns=glue.table_columns(glue_table),
            partition_keys=keys,
            location=_dir(sd["Location"]),
            format=fmt,
            # With partition projection the registered partitions are ignored, as on Athena.
            partitions=glue.list_partitions(self.settings, name, database)
            if keys and glue.projection(glue_table) is None
            else [],
        )

    def _files(self, table: _Table, only: set[str] | None, bounds: dict[str, str] | None = None) -> list[str]:
        """The table's data files, as Athena sees them: only under registered or projected partitions."""
        projected = glue.projection(table.glue) if table.partition_keys else None
        if projected is not None:
            projection = Projection(projected, table.qualified, table.location, table.key_names)
            return self._projected_files(table, projection, only, bounds or {})
        if table.partition_keys:
            dirs = {_dir(p["StorageDescriptor"]["Location"]) for p in table.partitions}
        else:
            dirs = {table.location}
        if only is not None:  # "$path" IN (…): no listing needed, just keep the visible ones
            return sorted(f for f in only if f.rsplit("/", 1)[0] + "/" in dirs and not _hidden(f))
        roots = [table.location, *sorted({d for d in dirs if not d.startswith(table.location)})]
        files = []
        for root in roots:
            bucket, prefix = _split_s3(root)
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    uri = f"s3://{bucket}/{obj['Key']}"
                    if obj["Size"] and not _hidden(uri) and uri.rsplit("/", 1)[0] + "/" in dirs:
                        files.append(uri)
        return files

    def _projected_files(
        self, table: _Table, projection: Projection, only: set[str] | None, bounds: dict[str, str]
    ) -> list[str]:
        """Files under the partitions the projection yields: one listing from the template's fixed
        prefix, starting (StartAfter) at the query's lower bound on the first key or on "$path",
        instead of Glue's partitions."""
        if only is not None:
            return sorted(f for f in only if projection.visible(f) and not _hidden(f))
        bucket, prefix = _split_s3(projection.prefix)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        starts = []
        if projection.first_key in bounds:  # keys of that value and above sort after prefix+value
            starts.append(prefix + bounds[projection.first_key])
        path_from = bounds.get("$path", "")  # "$path" >= 's3://…': the files before it are not read
        if path_from.startswith(f"s3://{bucket}/"):
            starts.append(path_from[len(f"s3://{bucket}/") :])
        if starts:  # StartAfter is exclusive: start just before the bound (a key may equal it)
            kwargs["StartAfter"] = max(starts)[:-1]
        files = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                uri = f"s3://{bucket}/{obj['Key']}"
                if obj["Size"] and not _hidden(uri) and uri >= path_from and projection.visible(uri):
                    files.append(uri)
        return files

    def _view(
        self, table: _Table, only: set[str] | None, with_path: bool, bounds: dict[str, str] | None = None
    ) -> str:
        self._views += 1
        view = f"__{table.name}_{self._views}"
        files = self._files(table, only, bounds)
        typed = [(c, hive_to_duckdb(t)) for c, t in table.columns]
        keys = [(c, hive_to_duckdb(t)) for c, t in table.partition_keys]
        if not files:
            cols = [f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in typed + keys]
            cols += ['CAST(NULL AS VARCHAR) AS "$path"'] if with_path else []
            body = f"SELECT {', '.join(cols)} WHERE false"
        else:
            body = self._reader(table, files, typed, keys, with_path)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {body}")
        return view

    def _reader(
        self,
        table: _Table,
        files: list[str],
        typed: list[tuple[str, str]],
        keys: list[tuple[str, str]],
        with_path: bool,
    ) -> str:
        file_list = "[" + ", ".join(literal(f) for f in files) + "]"
        hive_keys = _hive_keys(files[0], table.location)
        key_types = dict(keys)
        hive_types = ", ".join(f"{literal(k)}: {literal(key_types.get(k, 'VARCHAR'))}" for k in hive_keys)
        options = [f"hive_partitioning = {str(bool(hive_keys)).lower()}"]
        if hive_keys:
            options.append(f"hive_types = {{{hive_types}}}")
        if with_path:
            options.append("filename = '$path'")
        if table.format == "json":
            columns = ", ".join(f"{literal(c)}: {literal(t)}" for c, t in typed)
            options = ["format = 'newline_delimited'", f"columns = {{{columns}}}", *options]
            reader = f"read_json({file_list}, {', '.join(options)})"
            data = [_quote(c) for c, _ in typed]
        else:
            reader = f"read_parquet({file_list}, {', '.join(options)})"
            data = [f"CAST({_quote(c)} AS {t}) AS {_quote(c)}" for c, t in typed]
        projection = data + [_quote(c) for c, _ in keys] + (['"$path"'] if with_path else [])
        return f"SELECT {', '.join(projection)} FROM {reader}"


MAX_VIEW_DEPTH = 8


def _refuse_duckdb_only_functions(sql: str) -> None:
    """QueryError naming the first DuckDB-only function called in `sql` (strings and comments aside)."""
    import sqlglot
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    try:
        tokens = sqlglot.Dialect.get_or_raise("trino").tokenize(sql)
    except TokenError:
        return  # the parser reports it, with its position
    for token, after in itertools.pairwise(tokens):
        name = token.text.lower()
        if after.token_type == TokenType.L_PAREN and name in DUCKDB_ONLY_FUNCTIONS:
            if token.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
                continue
            raise QueryError(
                f"function {name}() refused: it is DuckDB's, and Athena (engine 3, Trino) does not have it"
            )


def _hidden(uri: str) -> bool:
    """Files Athena skips: names starting with _ or . (e.g. _SUCCESS, .tmp)."""
    return uri.rsplit("/", 1)[-1][:1] in ("_", ".")


def _hive_keys(file: str, location: str) -> list[str]:
    relative = file[len(location) :] if file.startswith(location) else urlparse(file).path
    return [seg.split("=", 1)[0] for seg in relative.split("/")[:-1] if "=" in seg]


def _ctas_properties(statement: Any) -> dict[str, Any]:
    from sqlglot import exp

    props: dict[str, Any] = {}
    for prop in (statement.args.get("properties") or exp.Properties()).expressions:
        if isinstance(prop, exp.FileFormatProperty):
            props["format"] = prop.this.name
        elif isinstance(prop, exp.PartitionedByProperty):
            items = prop.this.expressions if hasattr(prop.this, "expressions") else [prop.this]
            props["partitioned_by"] = [i.name for i in items]
        elif isinstance(prop, exp.Property):
            props[prop.name.lower()] = prop.args["value"].name
    return props


def _first_word(sql: str) -> str:
    """The statement's keyword as written (INSTALL, SHOW…), for refusals; sqlglot may misname it."""
    import sqlglot

    try:
        tokens = sqlglot.tokenize(sql, read="trino")
    except Exception:  # a refusal message must not fail itself
        return "this"
    return tokens[0].text.upper() if tokens else "this"


def _hint(kind: str) -> str:
    hints = {"SHOW": "list tables with `sales-ops tables`", "DESCRIBE": "use `sales-ops describe TABLE`"}
    return f" ({hints[kind]})" if kind in hints else ""


def _has_temporary(statement: Any) -> bool:
    from sqlglot import exp

    props = statement.args.get("properties")
    return bool(props) and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)


def _permission_message(exc: Exception, bucket: str) -> str:
    """DuckDB's permission error, said as what it means here."""
    target = re.search(r'Cannot access (?:file|directory) "([^"]*)"', str(exc))
    what = f" ({target.group(1)})" if target else ""
    return f"refused{what}: SQL here reads and writes only {bucket}, no local files, URLs or extensions"


def _parse_message(exc: Any) -> str:
    errors = getattr(exc, "errors", None) or []
    if not errors:
        return _ANSI.sub("", str(exc))
    first = errors[0]
    near = _ANSI.sub("", (first.get("start_context") or "") + (first.get("highlight") or "")).strip()
    where = f"line {first.get('line')}, column {first.get('col')}"
    return f"syntax error at {where}: {first.get('description')}" + (f" (near {near!r})" if near else "")


def _duckdb_error(exc: Exception, views: dict[str, str], sql: str) -> QueryError:
    message = str(exc)
    for view, table in views.items():
        message = message.replace(_quote(view), table).replace(view, table)
    missing = re.search(r"Table with name (\S+) does not exist", message)
    if missing:
        return MissingTableError(missing.group(1), message, sql)
    return QueryError(message, sql)
