"""Glue's shapes and calls, in one place: tables, partitions, SerDes and batching.

Shared by the crawlers, the engine, the compaction and the rollups.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import Settings

RAW_TABLE = "raw_orders"
RAW_PARTITION_KEYS = (("dt", "string"), ("hour", "string"))
GLUE_BATCH = 100  # BatchCreate/Update/DeletePartition take at most 100 entries (25 for delete)
GLUE_DELETE_BATCH = 25

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


def columns_input(
    columns: list[tuple[str, str]], descriptions: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """Glue columns, each with its description as `Comment` (contract columns by default).

    Glue's Column has an optional `Comment` (at most 255 characters); Athena and the Glue console
    show it (https://docs.aws.amazon.com/glue/latest/webapi/API_Column.html).
    """
    known = COLUMN_DESCRIPTIONS if descriptions is None else descriptions
    out = []
    for name, type_ in columns:
        column = {"Name": name, "Type": type_}
        if name in known:
            column["Comment"] = known[name][:255]
        out.append(column)
    return out


# A table parameter: the table's columns grew after files were written, so its older files lack
# the new ones. Athena reads them as NULL (Parquet is read by column name; "Handling schema
# updates", https://docs.aws.amazon.com/athena/latest/ug/handling-schema-updates-chapter.html); the
# local engine reads such a table by name too (query/catalog_tables.py).
COLUMNS_ADDED = "sales_ops.columns_added"


def parquet_table_input(
    name: str,
    columns: list[tuple[str, str]],
    location: str,
    partition_keys: Sequence[tuple[str, str]] = (),
    descriptions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Glue TableInput for an external Parquet table, as Athena's CTAS would register it.

    ZSTD: a third smaller than Snappy on orders_latest, so a third fewer bytes to scan; Athena's
    INSERT INTO honours `parquet.compression`, and the local engine does too.
    """
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "parquet.compression": "ZSTD"},
        "PartitionKeys": columns_input(list(partition_keys), descriptions),
        "StorageDescriptor": {
            "Columns": columns_input(columns, descriptions),
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "Compressed": False,
            "Parameters": {"classification": "parquet"},
        },
    }


def json_table_input(
    name: str,
    columns: list[tuple[str, str]],
    location: str,
    partition_keys: Sequence[tuple[str, str]] = (),
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Glue TableInput for JSON lines, as the crawler's JSON classifier registers it."""
    params = {"classification": "json", "compressionType": "none", "typeOfData": "file", **(parameters or {})}
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": params,
        "PartitionKeys": columns_input(list(partition_keys)),
        "StorageDescriptor": {
            "Columns": columns_input(columns),
            "Location": location,
            "InputFormat": TEXT_INPUT,
            "OutputFormat": TEXT_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                "Parameters": {"paths": ",".join(name for name, _ in columns)},
            },
            "Compressed": False,
            "Parameters": dict(params),
        },
    }


def get_table(settings: Settings, name: str, database: str | None = None) -> dict[str, Any] | None:
    """The Glue table, or None when it (or its database) does not exist."""
    glue = settings.client("glue")
    try:
        return glue.get_table(DatabaseName=database or settings.database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None


def require_table(settings: Settings, name: str) -> dict[str, Any]:
    """The Glue table, for callers that made sure it exists; a clear error if it went missing."""
    table = get_table(settings, name)
    if table is None:
        raise LookupError(f"Glue table {settings.database}.{name} does not exist (deleted meanwhile?)")
    return table


def list_tables(settings: Settings, database: str | None = None) -> list[dict[str, Any]]:
    """Every table of the database, sorted by name."""
    pages = (
        settings.client("glue")
        .get_paginator("get_tables")
        .paginate(DatabaseName=database or settings.database)
    )
    return sorted((t for page in pages for t in page["TableList"]), key=lambda t: t["Name"])


def put_table(
    settings: Settings, table_input: dict[str, Any], database: str | None = None, archive: bool = False
) -> bool:
    """Create the table, or update it in place (one atomic call); True when it was created.

    No archived version by default (`SkipArchive`): the writers repoint a table on every cycle
    (orders_live after each compaction, each rollup build), which at one a minute archived up to
    1,440 versions a table a day, and Glue refuses writes past 100,000 versions per table
    (https://docs.aws.amazon.com/glue/latest/webapi/API_UpdateTable.html,
    https://docs.aws.amazon.com/general/latest/gr/glue.html). `archive=True` keeps the old version.
    """
    glue = settings.client("glue")
    database = database or settings.database
    try:
        glue.create_table(DatabaseName=database, TableInput=table_input)
        return True
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table_input, SkipArchive=not archive)
        return False


def delete_table(settings: Settings, name: str, database: str | None = None) -> bool:
    glue = settings.client("glue")
    try:
        glue.delete_table(DatabaseName=database or settings.database, Name=name)
        return True
    except glue.exceptions.EntityNotFoundException:
        return False


def table_columns(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"].get("Columns", [])]


def partition_keys(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table.get("PartitionKeys", [])]


def list_partitions(
    settings: Settings,
    table: str,
    database: str | None = None,
    expression: str | None = None,
    with_columns: bool = True,
) -> list[dict[str, Any]]:
    """Every partition of the table (Values, StorageDescriptor.Location, Parameters), or those that
    `expression` selects (GetPartitions' filter on partition keys, e.g. `v = 'x'`).
    `with_columns=False` leaves out each partition's column schema (ExcludeColumnSchema): a
    fraction of the answer's size, for readers of the locations only."""
    paginator = settings.client("glue").get_paginator("get_partitions")
    kwargs: dict[str, Any] = {"Expression": expression} if expression else {}
    if not with_columns:
        kwargs["ExcludeColumnSchema"] = True
    out: list[dict[str, Any]] = []
    for page in paginator.paginate(DatabaseName=database or settings.database, TableName=table, **kwargs):
        out += page["Partitions"]
    return out


def existing_partitions(
    settings: Settings, table: dict[str, Any], values: list[tuple[str, ...]]
) -> set[tuple[str, ...]]:
    """Which of these partitions the table has (BatchGetPartition, 1,000 a call): a write asks
    for the partitions it wrote, not for every partition of its target."""
    glue = settings.client("glue")
    database = table.get("DatabaseName") or settings.database
    found: set[tuple[str, ...]] = set()
    for batch in _chunks([{"Values": list(v)} for v in values], 1000):
        while batch:  # Glue may leave keys unprocessed (throttling): ask for those again
            answer = glue.batch_get_partition(
                DatabaseName=database, TableName=table["Name"], PartitionsToGet=batch
            )
            found |= {tuple(p["Values"]) for p in answer.get("Partitions", [])}
            batch = answer.get("UnprocessedKeys", [])
    return found


def partition_input(
    table: dict[str, Any], values: list[str], location: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """A PartitionInput inheriting the table's storage (as the crawler's InheritFromTable does)."""
    sd = {k: v for k, v in table["StorageDescriptor"].items() if k not in ("Location",)}
    return {
        "Values": list(values),
        "StorageDescriptor": {**sd, "Location": location},
        "Parameters": parameters or {},
    }


def put_partitions(settings: Settings, table: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Create or repoint partitions; each partition's swap is one atomic catalog write."""
    glue = settings.client("glue")
    name = table["Name"]
    database = table.get("DatabaseName") or settings.database
    for batch in _chunks(entries, GLUE_BATCH):
        result = glue.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=batch)
        existing = {
            tuple(err["PartitionValues"])
            for err in result.get("Errors", [])
            if err["ErrorDetail"]["ErrorCode"] == "AlreadyExistsException"
        }
        other = [e for e in result.get("Errors", []) if tuple(e["PartitionValues"]) not in existing]
        if other:
            raise RuntimeError(f"Glue refused partitions of {name}: {other[0]['ErrorDetail']}")
        updates = [
            {"PartitionValueList": e["Values"], "PartitionInput": e}
            for e in batch
            if tuple(e["Values"]) in existing
        ]
        if updates:
            result = glue.batch_update_partition(DatabaseName=database, TableName=name, Entries=updates)
            if result.get("Errors"):
                raise RuntimeError(f"Glue refused partition updates of {name}: {result['Errors'][0]}")


def delete_partitions(settings: Settings, table: str, values: list[list[str]]) -> None:
    glue = settings.client("glue")
    for batch in _chunks(values, GLUE_DELETE_BATCH):
        glue.batch_delete_partition(
            DatabaseName=settings.database,
            TableName=table,
            PartitionsToDelete=[{"Values": list(v)} for v in batch],
        )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- raw_orders without a crawl: the contract's columns and partition projection ------------------


def declared_raw_type(raw_types: frozenset[str]) -> str:
    """A raw column's type before the crawler has seen data (the crawler widens it later)."""
    return next((t for t in ("double", "int", "boolean") if t in raw_types), "string")


# The first dt of raw_orders' projection. On aws the stack's RawHistoryStart (the stack's creation
# date, set by `sales-ops deploy`): Athena enumerates every projected dt/hour of a query with no dt
# predicate, 55,000+ from 2020. Locally (and the template's default for stacks made before the
# parameter) 2020-01-01, early enough for the synthetic histories of the benchmarks.
RAW_HISTORY_START = "2020-01-01"


def raw_projection_parameters(location: str, start: str = RAW_HISTORY_START) -> dict[str, str]:
    """Athena partition projection for dt (date) and hour (00-23) under raw/orders/.

    With `projection.enabled`, Athena computes the partitions from these properties and ignores the
    ones registered in Glue, so a new dt/hour is visible as soon as Firehose writes it, with no crawl
    (https://docs.aws.amazon.com/athena/latest/ug/partition-projection.html, types and properties:
    https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html). The local
    engine honours the same properties (sales_ops/query/duckdb.py). The range starts at `start` and
    ends at NOW, plus a day for clock skew.
    """
    return {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{start},NOW+1DAYS",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": location.rstrip("/") + "/dt=${dt}/hour=${hour}/",
    }


def raw_table_input(
    location: str, columns: list[tuple[str, str]], start: str = RAW_HISTORY_START
) -> dict[str, Any]:
    """raw_orders as JSON lines with partition projection on dt/hour from `start`."""
    return json_table_input(
        RAW_TABLE, columns, location, list(RAW_PARTITION_KEYS), raw_projection_parameters(location, start)
    )


def projection_start(table: dict[str, Any]) -> str | None:
    """The first dt of a table's projection range, or None."""
    text = table.get("Parameters", {}).get("projection.dt.range", "")
    return text.split(",", 1)[0].strip() or None


def ensure_raw_table(settings: Settings, location: str) -> None:
    """raw_orders exists (the contract's columns until the crawler has seen data) and is projected.

    A table the crawler made keeps its columns; only missing projection properties are added.
    """
    from sales_ops.schema import RAW_COLUMNS

    table = get_table(settings, RAW_TABLE)
    if table is None:
        declared = [(c.name, declared_raw_type(c.raw_types)) for c in RAW_COLUMNS]
        put_table(settings, raw_table_input(location, declared))
        return
    # The stack sets the range's start (RawHistoryStart): keep it, never widen it back to 2020.
    wanted = raw_projection_parameters(location, projection_start(table) or RAW_HISTORY_START)
    if all(table.get("Parameters", {}).get(k) == v for k, v in wanted.items()):
        return
    put_table(
        settings, {**table_update_input(table), "Parameters": {**table.get("Parameters", {}), **wanted}}
    )


def table_update_input(table: dict[str, Any]) -> dict[str, Any]:
    """The TableInput of an existing table (GetTable's answer minus its read-only fields)."""
    keep = (
        "Name",
        "Description",
        "Owner",
        "TableType",
        "Parameters",
        "PartitionKeys",
        "StorageDescriptor",
        "ViewOriginalText",
        "ViewExpandedText",
        "Retention",
    )
    return {k: table[k] for k in keep if k in table}


def projection(table: dict[str, Any]) -> dict[str, str] | None:
    """The table's partition projection properties, or None when projection is off."""
    params = table.get("Parameters", {})
    if str(params.get("projection.enabled", "")).strip().lower() != "true":
        return None
    return {
        k: v for k, v in params.items() if k.startswith("projection.") or k == "storage.location.template"
    }


# --- views, as Athena's CREATE VIEW stores them ---------------------------------------------------

PRESTO_VIEW = "/* Presto View */"


def view_input(name: str, sql: str, columns: list[tuple[str, str]], database: str) -> dict[str, Any]:
    """A Glue TableInput for an Athena (Presto/Trino) view, in the shape Athena's CREATE VIEW writes.

    Athena keeps the view's SQL base64-encoded JSON in ViewOriginalText as `/* Presto View: … */`
    with `/* Presto View */` in ViewExpandedText, TableType VIRTUAL_VIEW and `presto_view = true`
    (https://docs.aws.amazon.com/athena/latest/ug/views.html, "Working with views"; Glue's own
    description: https://docs.aws.amazon.com/athena/latest/ug/views-glue.html). `columns` are in Trino
    types (varchar, bigint, decimal(12,2), date…).
    """
    import base64
    import json

    definition = {
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": n, "type": t} for n, t in columns],
        "owner": "sales-ops",
        "runAsInvoker": False,
        "properties": {},
    }
    encoded = base64.b64encode(json.dumps(definition).encode()).decode()
    return {
        "Name": name,
        "TableType": "VIRTUAL_VIEW",
        "Parameters": {"presto_view": "true", "comment": "Presto View"},
        "ViewOriginalText": f"/* Presto View: {encoded} */",
        "ViewExpandedText": PRESTO_VIEW,
        "PartitionKeys": [],
        "StorageDescriptor": {
            # The contract's descriptions as Glue comments, as on the tables (Athena's CREATE VIEW
            # writes none, but Glue's Column takes one and the console shows it).
            "Columns": columns_input([(n, _hive_of_trino(t)) for n, t in columns]),
            "SerdeInfo": {},
            "Location": "",
        },
    }


def view_sql(table: dict[str, Any]) -> str | None:
    """The SQL of an Athena view stored in Glue, or None when the table is not one."""
    import base64
    import binascii
    import json

    if table.get("TableType") != "VIRTUAL_VIEW":
        return None
    text = (table.get("ViewOriginalText") or "").strip()
    if not (text.startswith("/* Presto View:") and text.endswith("*/")):
        return text or None  # a Hive view keeps plain SQL
    try:
        return json.loads(base64.b64decode(text[len("/* Presto View:") : -2].strip()))["originalSql"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


def _hive_of_trino(type_: str) -> str:
    return {"varchar": "string"}.get(type_.lower(), type_.lower().replace(" ", ""))
