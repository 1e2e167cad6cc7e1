"""A catalog table as the local engine reads it, the way Athena would: its Glue entry, its data
files (only under registered or projected partitions; hidden files skipped) and the DuckDB SELECT
over them: `read_json(files, columns=…)` with the catalog's schema (as Athena's SerDe uses it) or
`read_parquet(files)`, both with hive partitioning so that filters on partition keys prune files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from sales_ops.catalog import glue
from sales_ops.query.athena_rules import hidden
from sales_ops.query.errors import MissingTableError, QueryError
from sales_ops.query.pruning import Projection
from sales_ops.query.templates import literal
from sales_ops.query.types import hive_to_duckdb
from sales_ops.settings import Settings


@dataclass
class CatalogTable:
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


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a", "s3n"):
        raise QueryError(f"not an S3 location: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def as_dir(uri: str) -> str:
    """The URI with a trailing slash: a folder."""
    return uri if uri.endswith("/") else uri + "/"


def quoted(name: str) -> str:
    """An identifier for DuckDB, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def catalog_entry(settings: Settings, database: str, name: str) -> dict[str, Any]:
    """The Glue table or view (MissingTableError when there is none)."""
    database, name = database.lower(), name.lower()
    if database == "awsdatacatalog":
        database = settings.database
    glue_table = glue.get_table(settings, name, database)
    if glue_table is None:
        raise MissingTableError(f"{database}.{name}")
    glue_table["DatabaseName"] = database
    return glue_table


def load_table(
    settings: Settings, glue_table: dict[str, Any], name: str, with_partitions: bool = True
) -> CatalogTable:
    """The table of a catalog entry (a view is refused: the engine writes and lists tables only).
    `with_partitions=False` for a write's target: it needs the partitions it writes only
    (`glue.existing_partitions`), not every one the table has."""
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
    return CatalogTable(
        database=database,
        name=name,
        glue=glue_table,
        columns=glue.table_columns(glue_table),
        partition_keys=keys,
        location=as_dir(sd["Location"]),
        format=fmt,
        # With partition projection the registered partitions are ignored, as on Athena. Only
        # their locations are read (table_files): their column schemas are not asked for.
        partitions=glue.list_partitions(settings, name, database, with_columns=False)
        if with_partitions and keys and glue.projection(glue_table) is None
        else [],
    )


Listing = Callable[[str, str], list[dict[str, Any]]]  # (bucket, prefix) → ListObjectsV2 Contents


def list_prefix(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under the prefix (ListObjectsV2, all pages)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]


def table_files(
    s3: Any,
    table: CatalogTable,
    only: set[str] | None,
    bounds: dict[str, str] | None = None,
    listing: Listing | None = None,
) -> list[str]:
    """The table's data files, as Athena sees them: only under registered or projected partitions.
    `listing` lists a prefix (the engine's lists each prefix once a statement: orders_base and
    orders_tombstones share one location)."""
    projected = glue.projection(table.glue) if table.partition_keys else None
    if projected is not None:
        projection = Projection(projected, table.qualified, table.location, table.key_names)
        return _projected_files(s3, projection, only, bounds or {})
    if table.partition_keys:
        dirs = {as_dir(p["StorageDescriptor"]["Location"]) for p in table.partitions}
    else:
        dirs = {table.location}
    if only is not None:  # "$path" IN (…): no listing needed, just keep the visible ones
        return sorted(f for f in only if in_folders(f, dirs) and not hidden(f))
    roots = [table.location, *sorted({d for d in dirs if not d.startswith(table.location)})]
    listing = listing or (lambda bucket, prefix: list_prefix(s3, bucket, prefix))
    files = []
    for root in roots:
        bucket, prefix = split_s3(root)
        for obj in listing(bucket, prefix):
            uri = f"s3://{bucket}/{obj['Key']}"
            if obj["Size"] and not hidden(uri) and in_folders(uri, dirs):
                files.append(uri)
    return files


def in_folders(uri: str, dirs: set[str]) -> bool:
    """Whether the file lies in one of the folders or below: Athena reads a location's subfolders
    too ("Athena reads all data stored in the Amazon S3 folder that you specify",
    https://docs.aws.amazon.com/athena/latest/ug/tables-location-format.html); orders_base's
    partitions hold their version's buckets in subfolders."""
    cut = uri.rfind("/")
    while cut > len("s3://"):
        if uri[: cut + 1] in dirs:
            return True
        cut = uri.rfind("/", 0, cut)
    return False


def _projected_files(
    s3: Any, projection: Projection, only: set[str] | None, bounds: dict[str, str]
) -> list[str]:
    """Files under the partitions the projection yields: one listing from the template's fixed
    prefix, starting (StartAfter) at the query's lower bound on the first key or on "$path",
    instead of Glue's partitions."""
    if only is not None:
        return sorted(f for f in only if projection.visible(f) and not hidden(f))
    bucket, prefix = split_s3(projection.prefix)
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
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            uri = f"s3://{bucket}/{obj['Key']}"
            if obj["Size"] and not hidden(uri) and uri >= path_from and projection.visible(uri):
                files.append(uri)
    return files


def files_select(table: CatalogTable, files: list[str], with_path: bool) -> str:
    """The SELECT a view of the table runs: its columns (and partition keys, and "$path" if asked)
    read from `files`, typed as the catalog says; no files, no rows."""
    typed = [(c, hive_to_duckdb(t)) for c, t in table.columns]
    keys = [(c, hive_to_duckdb(t)) for c, t in table.partition_keys]
    if not files:
        cols = [f"CAST(NULL AS {t}) AS {quoted(c)}" for c, t in typed + keys]
        cols += ['CAST(NULL AS VARCHAR) AS "$path"'] if with_path else []
        return f"SELECT {', '.join(cols)} WHERE false"
    # DuckDB takes partition keys from the folders (key=value) and wants the same keys in every
    # file's path; Athena takes them from the catalog, so a file in a partition's subfolder (a
    # version's buckets, §2.5) or beside them is read alike: one reader per set of folder keys.
    groups: dict[tuple[str, ...], list[str]] = {}
    for f in files:
        groups.setdefault(tuple(_hive_keys(f, table.location)), []).append(f)
    return "\nUNION ALL\n".join(_reader(table, group, typed, keys, with_path) for group in groups.values())


def _reader(
    table: CatalogTable,
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
        data = [quoted(c) for c, _ in typed]
    else:
        reader = f"read_parquet({file_list}, {', '.join(options)})"
        if table.glue.get("Parameters", {}).get(glue.COLUMNS_ADDED) == "true":
            reader = _by_name(reader, typed)
        data = [f"CAST({quoted(c)} AS {t}) AS {quoted(c)}" for c, t in typed]
    projection = data + [quoted(c) for c, _ in keys] + (['"$path"'] if with_path else [])
    return f"SELECT {', '.join(projection)} FROM {reader}"


def _by_name(reader: str, typed: list[tuple[str, str]]) -> str:
    """Parquet read by column name, a column no file has as NULL (as Athena reads a table whose
    columns grew, glue.COLUMNS_ADDED): `union_by_name` fills a column only some files have, and a
    UNION BY NAME with an empty row of every catalog column fills one that none has."""
    stub = ", ".join(f"CAST(NULL AS {t}) AS {quoted(c)}" for c, t in typed)
    by_name = reader[: -len(")")] + ", union_by_name = true)"
    return f"(SELECT * FROM {by_name} UNION ALL BY NAME SELECT {stub} WHERE false)"


def _hive_keys(file: str, location: str) -> list[str]:
    relative = file[len(location) :] if file.startswith(location) else urlparse(file).path
    return [seg.split("=", 1)[0] for seg in relative.split("/")[:-1] if "=" in seg]
