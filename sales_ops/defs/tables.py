"""Table metadata for the UI: column schemas (with the contract's descriptions) and table names.

Definition metadata (`dagster/column_schema`, `dagster/table_name`) is there before the first run;
a materialization then reports the schema the catalogue actually holds.
"""

from typing import Any

import dagster as dg
from sales_ops.schema import COLUMN_DESCRIPTIONS
from sales_ops.settings import Settings

# The Glue database as the definitions name it (the default; the aws stack's own name is in each
# materialization's metadata).
DATABASE = Settings.database


def column_schema(
    columns: list[tuple[str, str]], descriptions: dict[str, str] | None = None
) -> dg.TableSchema:
    known = COLUMN_DESCRIPTIONS if descriptions is None else descriptions
    return dg.TableSchema(
        columns=[dg.TableColumn(name, type_, description=known.get(name)) for name, type_ in columns]
    )


def table_schema(table: dict[str, Any], descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    """A Glue table's columns (partition keys last, as Athena shows them) for the UI."""
    storage = table.get("StorageDescriptor", {}).get("Columns", [])
    partitions = table.get("PartitionKeys", [])
    columns = [(col["Name"], col.get("Type", "?")) for col in (*storage, *partitions)]
    return column_schema(columns, descriptions)


def table_metadata(
    name: str, columns: list[tuple[str, str]], descriptions: dict[str, str] | None = None
) -> dict[str, Any]:
    """Definition metadata of a table asset: its full name and its column schema."""
    return {
        "dagster/table_name": f"{DATABASE}.{name}",
        "dagster/column_schema": column_schema(columns, descriptions),
    }
