"""The order contract (docs/design.md §2.1, §2.2, §2.4) and the business rules, written once.

Everything that names the columns or the meaning of a sale asks here: the compaction's Glue tables
and SQL, the raw-schema check, the Dagster column schemas, and every SQL template (through the
fragments in `SQL_RULES`, which `sales_ops.query.templates` renders into each `{placeholder}`).

The Lambda in lambdas/firehose_transform/ is one standalone file and keeps its own copy of
`ORDER_ATTRIBUTES`; tests/test_pipeline.py asserts the two are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERIC = frozenset({"int", "bigint", "double", "decimal"})


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    latest_type: str = "string"  # Hive type in orders_latest
    raw_types: frozenset[str] = frozenset({"string"})  # what the crawler may type it as in raw_orders


# §2.1: the DynamoDB item. Numbers in raw JSON are typed by the values seen, hence the families.
ORDER_COLUMNS: tuple[Column, ...] = (
    Column("order_id", "Order key (DynamoDB hash key)."),
    Column("customer_id", "Customer who placed the order."),
    Column("product_id", "Product ordered (one product per order)."),
    Column("product_name", "Product name at the time of the order."),
    Column("category", "Product category."),
    Column("quantity", "Units ordered (integer, at least 1).", "bigint", frozenset({"int", "bigint"})),
    Column("unit_price", "Price of one unit, 2 decimal places.", "decimal(12,2)", NUMERIC),
    Column("order_total", "quantity * unit_price: the amount of a sale.", "decimal(12,2)", NUMERIC),
    Column("status", "PLACED, PAID, SHIPPED, DELIVERED, CANCELLED or RETURNED."),
    Column("channel", "Sales channel (web, app, marketplace…)."),
    Column("region", "Shipping region."),
    Column("created_at", "When the order was placed (ISO-8601 UTC, Z)."),
    Column("updated_at", "When the order last changed (ISO-8601 UTC, Z)."),
)
# §2.2: what the Lambda adds to each change event in raw_orders.
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "DynamoDB stream eventID: the identity of one change."),
    Column("event_type", "INSERT, MODIFY or REMOVE."),
    Column("event_time", "ApproximateCreationDateTime of the change (ISO-8601 UTC, Z)."),
    Column("sequence_number", "Stream sequence number (digits); orders the changes of one order."),
    Column("is_deleted", "True for a REMOVE.", "boolean", frozenset({"boolean"})),
)
# §2.2: the Lambda's last key, every other attribute of the item as JSON *text*. Always a string
# (never a struct: Athena cannot read an empty one, nor one whose names hold `.`, `:`, `-` or differ
# only in case), so it is declared with the rest and needs no crawl on AWS, where the crawler only
# logs schema changes. Not carried into orders_latest.
EXTRA_COLUMN = Column(
    "extra", "Every other attribute of the item, as JSON text: json_extract_scalar(extra, '$.name')."
)
# §2.4: what orders_latest adds to the order.
LATEST_ONLY_COLUMNS: tuple[Column, ...] = (
    Column("last_event_time", "event_time of the change this row reflects."),
    Column(
        "last_sequence_number",
        "sequence_number of that change, zero-padded to 40 digits (sorts as the number does).",
    ),
)

ORDER_ATTRIBUTES: tuple[str, ...] = tuple(c.name for c in ORDER_COLUMNS)
# Everything that describes an order apart from its key: what a reconciliation compares.
ORDER_VALUE_FIELDS: tuple[str, ...] = ORDER_ATTRIBUTES[1:]
LATEST_COLUMNS: tuple[Column, ...] = ORDER_COLUMNS + LATEST_ONLY_COLUMNS
RAW_COLUMNS: tuple[Column, ...] = EVENT_COLUMNS + ORDER_COLUMNS + (EXTRA_COLUMN,)
# The partition keys: raw_orders by arrival (Firehose's dt/hour prefixes), orders_latest by order date.
PARTITION_COLUMNS: tuple[Column, ...] = (
    Column("dt", "Partition: the UTC date the change arrived in S3 (Firehose prefix)."),
    Column("hour", "Partition: the UTC hour the change arrived in S3 (Firehose prefix)."),
    Column("order_date", "Partition: the UTC date of created_at.", "date"),
)
# One description per column name, wherever the column appears: Glue's column Comment (what
# Athena's console shows) and Dagster's column schema are both written from here.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    c.name: c.description for c in (*RAW_COLUMNS, *LATEST_ONLY_COLUMNS, *PARTITION_COLUMNS)
}

# DynamoDB Streams sequence numbers have 21 to 40 digits (StreamRecord.SequenceNumber, DynamoDB
# Streams API reference): past DECIMAL(38,0), where one overflowing cast fails a whole statement.
# Left-padded to 40 digits they compare as strings exactly as they do as numbers.
SEQUENCE_DIGITS = 40
SEQUENCE_ORDER = f"lpad(sequence_number, {SEQUENCE_DIGITS}, '0')"

# The business rules. A sale is a live order whose status is not one of these; amounts are order_total.
NOT_SALE_STATUSES: tuple[str, ...] = ("CANCELLED", "RETURNED")


def _trino_type(hive: str) -> str:
    return hive.upper().replace(",", ", ")


def _raw_as_latest() -> str:
    """The select list that turns a raw_orders event into an orders_latest row (plus is_deleted)."""
    parts = [
        c.name if c.latest_type == "string" else f"CAST({c.name} AS {_trino_type(c.latest_type)}) AS {c.name}"
        for c in ORDER_COLUMNS
    ]
    parts += ["event_time AS last_event_time", f"{SEQUENCE_ORDER} AS last_sequence_number"]
    return ", ".join(parts)


# Fragments every SQL template may use as {name}; a template never spells these out itself
# (tests/test_templates.py checks that no SQL file names the statuses).
SQL_RULES: dict[str, str] = {
    "is_sale": "status NOT IN (" + ", ".join(f"'{s}'" for s in NOT_SALE_STATUSES) + ")",
    "created_ts": "from_iso8601_timestamp(created_at)",
    "latest_columns": ", ".join(c.name for c in LATEST_COLUMNS),
    "raw_as_latest": _raw_as_latest(),
    "sequence_order": SEQUENCE_ORDER,
}
