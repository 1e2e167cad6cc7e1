"""SQL is written once, in Athena's dialect (Trino; docs/design.md §2.6). The local engine runs it
the way Athena would see it:
- sqlglot transpiles the statement from Trino to DuckDB;
- every table name resolves through the Glue catalog (`catalog_tables.py`): its columns and types,
  its partitions and their S3 locations. A JSON table becomes `read_json(files, columns=…)` (the
  catalog's schema, as Athena's SerDe uses it), a Parquet table `read_parquet(files)`, both with
  hive partitioning so that filters on partition keys prune files. Only files under registered
  partitions are visible, as on Athena; `"$path"` is the file's URI, and `"$path" IN (…)` selects
  just those files;
- CTAS with `external_location`/`partitioned_by` becomes `COPY … TO … (FORMAT parquet,
  PARTITION_BY …)` plus the Glue table and partitions Athena would register; `INSERT INTO` a
  partitioned Parquet table becomes a COPY into the table's location plus the new partitions.

Apart from the engine: Athena's rules (`athena_rules.py`: the statements, limits and file names
Athena has, so that local runs fail where Athena would) and the sandbox for people's SQL
(`sandbox.py`: no file or network access beyond the bucket, no writes into the managed zones).

Bytes scanned, locally: DuckDB's HTTP log (`enable_logging('HTTP')`) records every request httpfs
makes; the engine sums the Content-Length of the GET responses of each statement. That is exactly
the bytes read from S3 (Parquet: only the column chunks and footers fetched; JSON: whole files), the
same notion as Athena's DataScannedInBytes. The external file cache is off so that a repeated query
really reads again (and sees new data).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sales_ops.catalog import glue
from sales_ops.query import athena_rules, sandbox
from sales_ops.query.athena_rules import (
    MAX_PARTITIONS_PER_WRITE,
    PARTITION_FILE_PATTERN,
    STATEMENT_KINDS,
    ctas_properties,
    enforce_scan_cutoff,
)
from sales_ops.query.base import QueryResult, _EngineBase
from sales_ops.query.catalog_tables import (
    CatalogTable,
    as_dir,
    catalog_entry,
    files_select,
    list_prefix,
    load_table,
    quoted,
    split_s3,
    table_files,
)
from sales_ops.query.errors import MissingTableError, QueryError, ScanCutoffError
from sales_ops.query.pruning import lower_bounds, path_filter
from sales_ops.query.sandbox import COMMAND_WORDS, check_write, command_hint, first_word
from sales_ops.query.types import duckdb_to_hive, hive_to_duckdb
from sales_ops.settings import LOCAL_CREDENTIALS, Settings

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# sqlglot logs "Falling back to parsing as a 'Command'" for what it cannot parse; we refuse those
# statements with our own message.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _one_row(cursor: Any) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (an aggregate, a COPY)."""
    row = cursor.fetchone()
    if row is None:
        raise QueryError("the local engine expected a row and got none")
    return row


def httpfs_extension_path() -> Path:
    """The httpfs build shipped in the duckdb-extension-httpfs wheel (no download, docs/design.md §6)."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).resolve().parent / "extensions"
    path = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.exists():
        raise QueryError(f"httpfs for DuckDB {duckdb.__version__} not found under {root}")
    return path


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
        # The catalog as one statement sees it: each table's Glue entry, partitions and files read
        # once per statement however often it names them (as Athena plans a query once). Emptied
        # after each statement: the next one sees what changed.
        self._catalog_seen: dict[tuple, Any] = {}
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
        # No file or network access beyond the pipeline's bucket, for good (docs/design.md §2.6).
        sandbox.lock_down(self.con, [as_dir(self.settings.s3_uri()), f"{spill}/"])

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
                # Tokenized once for the refusals and the parse (three times cost ~12 % of a
                # statement's time); a statement that does not tokenize is parsed from its text,
                # for the parser's own error with its position.
                trino = sqlglot.Dialect.get_or_raise("trino")
                tokens = _tokens(trino, sql)
                kind = first_word(tokens)
                if kind in COMMAND_WORDS:  # before parsing: sqlglot misreads some (INSTALL x → alias)
                    raise QueryError(
                        f"the local engine does not run {kind} statements{command_hint(kind)}", sql
                    )
                athena_rules.refuse_duckdb_only_functions(tokens)
                parsed = trino.parser().parse(tokens, sql) if tokens is not None else trino.parse(sql)
                statements = [s for s in parsed if s is not None]
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
                raise QueryError(sandbox.permission_message(exc, self.settings.s3_uri()), sql) from None
            except duckdb.Error as exc:
                raise _duckdb_error(exc, views, sql) from None
            finally:
                self._catalog_seen.clear()
                for view in views:
                    self.con.execute(f"DROP VIEW IF EXISTS {quoted(view)}")
        result.seconds = time.monotonic() - started
        return result

    def _statement(self, statement: Any, views: dict[str, str], trusted: bool, kind: str) -> QueryResult:
        from sqlglot import exp

        if isinstance(statement, exp.Insert):
            return self._measured(lambda: self._insert(statement, views, trusted))
        if isinstance(statement, exp.Create) and statement.kind == "TABLE" and statement.expression:
            if statement.args.get("temporary") or athena_rules.has_temporary(statement):
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

    def _measured(self, run: Callable[[], tuple[list[str], list[tuple]]]) -> QueryResult:
        self.con.execute("CALL truncate_duckdb_logs()")
        columns, rows = run()
        read, written = self._bytes_so_far()
        enforce_scan_cutoff(read, self.settings.scan_cutoff_bytes)
        return QueryResult(columns, rows, read, 0.0, self.name, written)

    def _bytes_so_far(self) -> tuple[int, int]:
        """Bytes read from and written to S3 since the statement began (the HTTP log)."""
        read, written = _one_row(self.con.execute(_BYTES_SQL))
        return int(read), int(written)

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
        table = self._table(target.db or self.settings.database, target.name, with_partitions=False)
        check_write(self.settings, table.location, trusted, f"INSERT INTO {table.qualified}")
        if table.format != "parquet":
            raise QueryError(f"INSERT INTO {table.qualified}: the local engine writes Parquet tables only")
        body = statement.expression
        self._resolve(body, views)
        columns = table.columns + table.partition_keys
        body_sql = self._duck(body)
        source = self.con.sql(body_sql)
        wanted = names or [c for c, _ in columns]
        if len(source.columns) != len(wanted):
            raise QueryError(
                f"INSERT INTO {table.qualified}: the query has {len(source.columns)} columns, "
                f"the table expects {len(wanted)}"
            )
        aliases = ", ".join(f"c{i}" for i in range(len(wanted)))
        position = {name: i for i, name in enumerate(wanted)}
        projection = ", ".join(
            f"CAST({f'c{position[c]}' if c in position else 'NULL'} AS {hive_to_duckdb(t)}) AS {quoted(c)}"
            for c, t in columns
        )
        select = f"SELECT {projection} FROM ({body_sql}) AS __src({aliases})"
        count = self._copy(select, table.location, [c for c, _ in table.partition_keys], table)
        return ["rows"], [(count,)]

    def _ctas(self, statement: Any, views: dict[str, str], trusted: bool) -> tuple[list[str], list[tuple]]:
        from sqlglot import exp

        target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        database, name = (target.db or self.settings.database).lower(), target.name.lower()
        props = ctas_properties(statement)
        what = f"CREATE TABLE {database}.{name}"
        if props.get("external_location"):  # where it would write first: the security reason wins
            check_write(self.settings, as_dir(props["external_location"]), trusted, what)
        if props.get("external_location") and self.enforce_workgroup:
            raise athena_rules.external_location_refused(name, self.settings.workgroup)
        if props.get("format", "parquet").lower() != "parquet":
            raise QueryError(f"CREATE TABLE {name}: the local engine writes format = 'PARQUET' only")
        location = as_dir(props.get("external_location") or athena_rules.ctas_location(self.settings))
        check_write(self.settings, location, trusted, what)
        if glue.get_table(self.settings, name, database) is not None:
            raise QueryError(f"Table {database}.{name} already exists")
        bucket, prefix = split_s3(location)
        if self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
            raise QueryError(
                f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{database}.{name}' "
                f"already exists: {location}"
            )
        body = statement.expression
        self._resolve(body, views)
        body_sql = self._duck(body)
        source = self.con.sql(body_sql)
        hive = [(c.lower(), duckdb_to_hive(t)) for c, t in zip(source.columns, source.types, strict=True)]
        partitioned = [p.lower() for p in props.get("partitioned_by", [])]
        if partitioned and [c for c, _ in hive[-len(partitioned) :]] != partitioned:
            raise QueryError("partitioned_by columns must be the last columns of the SELECT, in that order")
        data_columns = hive[: len(hive) - len(partitioned)]
        keys = hive[len(data_columns) :]
        table_input = glue.parquet_table_input(name, data_columns, location, keys)
        glue.put_table(self.settings, table_input, database)
        table = self._table(database, name, with_partitions=False)  # new: _register_partitions asks
        projection = ", ".join(
            f"CAST({quoted(c)} AS {hive_to_duckdb(t)}) AS {quoted(c)}" for c, t in data_columns + keys
        )
        try:
            select = f"SELECT {projection} FROM ({body_sql})"
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
        table: CatalogTable,
        compression: str | None = None,
    ) -> int:
        """COPY the rows to Parquet under location; register the partitions written. Returns rows."""
        location = as_dir(location)
        compression = athena_rules.parquet_compression(compression, table.glue)
        if partition_by:
            keys = ", ".join(quoted(k) for k in partition_by)
            options = f"FORMAT parquet, COMPRESSION {compression}, PARTITION_BY ({keys}), "
            options += f"FILENAME_PATTERN '{PARTITION_FILE_PATTERN}', APPEND"
            count, files = _one_row(
                self.con.execute(f"COPY ({select}) TO '{location}' ({options}, RETURN_FILES)")
            )
            written = {f.rsplit("/", 1)[0] for f in files}
            self._enforce_cutoff_of_write(files)
            if len(written) > self.max_partitions_per_write:
                self._delete(files)  # Athena fails the statement; leave nothing registered
                raise athena_rules.too_many_open_partitions(len(written), self.max_partitions_per_write)
            self._register_partitions(table, location, files)
            return int(count)
        path = f"{location}{athena_rules.data_file_name()}"
        options = f"FORMAT parquet, COMPRESSION {compression}"
        (count,) = _one_row(self.con.execute(f"COPY ({select}) TO '{path}' ({options})"))
        self._enforce_cutoff_of_write([path])
        return int(count)

    def _enforce_cutoff_of_write(self, files: list[str]) -> None:
        """A write that read past the cutoff was cancelled: leave none of its files behind."""
        try:
            enforce_scan_cutoff(self._bytes_so_far()[0], self.settings.scan_cutoff_bytes)
        except ScanCutoffError:
            self._delete(files)
            raise

    def _delete(self, files: list[str]) -> None:
        """Remove a failed write's files (unless told to leave them, as Athena may)."""
        if self.leave_failed_writes:
            return
        for i in range(0, len(files), 1000):
            bucket = split_s3(files[0])[0]
            keys = [{"Key": split_s3(f)[1]} for f in files[i : i + 1000]]
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def _register_partitions(self, table: CatalogTable, location: str, files: list[str]) -> None:
        """Add the partitions the write created, as Athena's INSERT/CTAS does."""
        keys = [k for k, _ in table.partition_keys]
        found: dict[tuple[str, ...], str] = {}
        for file in files:
            directory = file[len(location) :].rsplit("/", 1)[0]
            values = dict(unquote(seg).split("=", 1) for seg in directory.split("/") if "=" in seg)
            found[tuple(values[k] for k in keys)] = f"{location}{directory}/"
        known = glue.existing_partitions(self.settings, table.glue, list(found))
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
            sandbox.check_drop(location, trusted, f"DROP TABLE {database}.{name}")
            glue.delete_table(self.settings, name, database)
        return QueryResult([], [], 0, 0.0, self.name)

    # resolution -------------------------------------------------------------------------------
    def _duck(self, node: Any) -> str:
        """The statement (or its body) in DuckDB's dialect, generated once per statement. In place
        (`copy=False`, as sqlglot's own transpile does): the tree is not used again, and the copy the
        generator would otherwise make of it cost as much as the generation."""
        from sqlglot.errors import ErrorLevel

        return node.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE, copy=False)

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
            entry = self._entry(ref.db or database or self.settings.database, name)
            definition = glue.view_sql(entry)
            if definition is not None:
                self._inline_view(ref, entry, definition, views, depth)
                continue
            table = self._loaded(entry, name)
            view = self._view(table, path_filter(ref), wants_path, lower_bounds(ref, table.key_names))
            views[view] = table.qualified
            alias = ref.alias or name
            ref.set("this", exp.to_identifier(view, quoted=True))
            ref.set("db", None)
            ref.set("catalog", None)
            ref.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))

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

    # The catalog reads of a statement, each once (see `_catalog_seen`).
    def _once(self, key: tuple, read: Callable[[], Any]) -> Any:
        if key not in self._catalog_seen:
            self._catalog_seen[key] = read()
        return self._catalog_seen[key]

    def _entry(self, database: str, name: str) -> dict[str, Any]:
        return self._once(
            ("entry", database.lower(), name), lambda: catalog_entry(self.settings, database, name)
        )

    def _loaded(self, entry: dict[str, Any], name: str) -> CatalogTable:
        database = entry["DatabaseName"]
        return self._once(("table", database, name), lambda: self._table(database, name, entry))

    def _files(self, table: CatalogTable, only: set[str] | None, bounds: dict[str, str] | None) -> list[str]:
        chosen = None if only is None else frozenset(only)
        key = ("files", table.qualified, chosen, str(sorted((bounds or {}).items())))
        return self._once(key, lambda: table_files(self.s3, table, only, bounds, self._listing))

    def _listing(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        return self._once(("listing", bucket, prefix), lambda: list_prefix(self.s3, bucket, prefix))

    def _table(
        self, database: str, name: str, glue_table: dict[str, Any] | None = None, with_partitions: bool = True
    ) -> CatalogTable:
        entry = glue_table or catalog_entry(self.settings, database, name)
        return load_table(self.settings, entry, name, with_partitions)

    def _view(
        self,
        table: CatalogTable,
        only: set[str] | None,
        with_path: bool,
        bounds: dict[str, str] | None = None,
    ) -> str:
        self._views += 1
        view = f"__{table.name}_{self._views}"
        body = files_select(table, self._files(table, only, bounds), with_path)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {quoted(view)} AS {body}")
        return view


MAX_VIEW_DEPTH = 8


def _tokens(dialect: Any, sql: str) -> list[Any] | None:
    """The statement's tokens in `dialect`, None when it does not tokenize."""
    try:
        return dialect.tokenize(sql)
    except Exception:  # the parse that follows reports it
        return None


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
        message = message.replace(quoted(view), table).replace(view, table)
    missing = re.search(r"Table with name (\S+) does not exist", message)
    if missing:
        return MissingTableError(missing.group(1), message, sql)
    return QueryError(message, sql)
