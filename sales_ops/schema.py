"""The order contract (docs/design.md §2.1, §2.2, §2.4) and the business rules, written once.

Everything that names the columns or the meaning of a sale asks here: the compaction's Glue tables
and SQL, the raw-schema check, the Dagster column schemas, and every SQL template (through the
fragments in `SQL_RULES`, which `sales_ops.query.templates` renders into each `{placeholder}`).

The Lambda in lambdas/firehose_transform/ is one standalone file and keeps its own copy of
`ORDER_ATTRIBUTES`; tests/test_pipeline.py asserts the two are identical.
"""

from __future__ import annotations

import hashlib
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
STATUSES: tuple[str, ...] = ("PLACED", "PAID", "SHIPPED", "DELIVERED", *NOT_SALE_STATUSES)

# §2.1's value rules, which compaction applies to every change it merges (docs/design.md §2.5,
# "Rejected changes"). A change that breaks one never reaches orders_latest and never stops the
# others: it is recorded by name (order, event, reason) in orders_rejected. Deletes are not judged
# (a tombstone needs only the key). Each rule: (condition that holds for a good value, reason text
# in SQL). Values are read as text first, so a number, a string or a nested value all compare.
# The Lambda (lambdas/firehose_transform/handler.py) keeps its own copy of these rules.
WHOLE_NUMBER = "^[0-9]{1,18}([.]0+)?$"  # 2 or 2.0 (a column typed double), never 1.5
AMOUNT = "^[0-9]{1,10}([.][0-9]{1,2})?$"  # fits DECIMAL(12,2): 10 digits, then at most 2 decimals
ISO_TIMESTAMP = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def _text(column: str) -> str:
    return f"CAST({column} AS VARCHAR)"


def _shown(column: str) -> str:
    return f"coalesce({_text(column)}, 'missing')"


def _whole(column: str) -> str:
    return f"TRY_CAST(split_part({_text(column)}, '.', 1) AS BIGINT)"


def _timestamp(column: str) -> str:
    """The UTC instant of an ISO-8601 text (any offset), NULL when it is not one."""
    text = _text(column)
    return f"CASE WHEN regexp_like({text}, '{ISO_TIMESTAMP}') THEN TRY(from_iso8601_timestamp({text})) END"


VALUE_RULES: tuple[tuple[str, str], ...] = (
    (f"length({_text('customer_id')}) > 0", "'customer_id missing'"),
    (f"length({_text('product_id')}) > 0", "'product_id missing'"),
    (
        f"regexp_like({_text('quantity')}, '{WHOLE_NUMBER}') AND {_whole('quantity')} >= 1",
        f"'quantity ' || {_shown('quantity')} || ' is not a whole number >= 1'",
    ),
    (
        f"regexp_like({_text('unit_price')}, '{AMOUNT}')",
        f"'unit_price ' || {_shown('unit_price')} || ' is not an amount of DECIMAL(12,2)'",
    ),
    (
        f"regexp_like({_text('order_total')}, '{AMOUNT}')",
        f"'order_total ' || {_shown('order_total')} || ' is not an amount of DECIMAL(12,2)'",
    ),
    (
        "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
        f"'status ' || {_shown('status')} || ' is not one of {', '.join(STATUSES)}'",
    ),
    (
        f"{_timestamp('created_at')} IS NOT NULL",
        f"'created_at ' || {_shown('created_at')} || ' is not an ISO-8601 timestamp'",
    ),
)


def _reject_reason() -> str:
    """SQL: why a change breaks §2.1 (the first rule it breaks), NULL when it is good or a delete."""
    whens = " ".join(f"WHEN NOT coalesce({ok}, false) THEN {why}" for ok, why in VALUE_RULES)
    return f"(CASE WHEN is_deleted THEN NULL {whens} END)"


def _checked_as_latest() -> str:
    """As `raw_as_latest`, with every cast a TRY_CAST of the text: a bad value never fails the
    statement (the row is rejected by `reject_reason`, so these values are never kept)."""
    parts = []
    for c in ORDER_COLUMNS:
        if c.latest_type == "string":
            parts.append(f"{_text(c.name)} AS {c.name}")
        elif c.latest_type == "bigint":
            parts.append(f"{_whole(c.name)} AS {c.name}")
        else:
            parts.append(f"TRY_CAST({_text(c.name)} AS {_trino_type(c.latest_type)}) AS {c.name}")
    parts += ["event_time AS last_event_time", f"{SEQUENCE_ORDER} AS last_sequence_number"]
    return ", ".join(parts)


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
ORDER_HASH_SQL = "substr(to_hex(md5(to_utf8(CAST(order_id AS VARCHAR)))), 1, 4)"


CUSTOMER_MD5 = "to_hex(md5(to_utf8(coalesce(customer_id, ''))))"


def _hex_value(hexed: str, first: int, count: int) -> str:
    """SQL: the number that `count` upper-case hex digits of `hexed` from position `first` spell,
    with functions both Athena (Trino) and the local engine have."""
    return " + ".join(
        f"(strpos('0123456789ABCDEF', substr({hexed}, {first + i}, 1)) - 1) * {16 ** (count - 1 - i)}"
        for i in range(count)
    )


def order_hash(order_id: str) -> str:
    """`{order_hash}` in Python: the first four hex digits of md5(order_id), upper case."""
    return hashlib.md5(order_id.encode()).hexdigest()[:4].upper()


SQL_RULES: dict[str, str] = {
    "is_sale": "status NOT IN (" + ", ".join(f"'{s}'" for s in NOT_SALE_STATUSES) + ")",
    "created_ts": "from_iso8601_timestamp(created_at)",
    "latest_columns": ", ".join(c.name for c in LATEST_COLUMNS),
    "raw_as_latest": _raw_as_latest(),
    # For the compaction's inputs (raw events, baseline rows): TRY-casts, the reason a change is
    # rejected, and the order's date, the UTC date of created_at (whatever its offset).
    "checked_as_latest": _checked_as_latest(),
    "reject_reason": _reject_reason(),
    "checked_order_date": f"CAST(({_timestamp('created_at')}) AT TIME ZONE 'UTC' AS DATE)",
    "sequence_order": SEQUENCE_ORDER,
    # A customer's bucket before the modulo: the first byte of md5(customer_id), 0-255. Written
    # with functions both Athena (Trino: md5, to_hex's upper-case hex, strpos) and the local engine
    # have, so that a customer falls in the same bucket on either (sales_ops/curated/customers.py).
    # An order's hash: the first four hex digits of md5(order_id), upper case, the same on Athena
    # and DuckDB (and `order_hash` below): the buckets of orders_latest_versions are its ranges.
    "order_hash": ORDER_HASH_SQL,
    "customer_hash": _hex_value(CUSTOMER_MD5, 1, 2),
    # A HyperLogLog sketch of customer_ids (sales_ops/dashboard/sketch.py): the register (the
    # first three hex digits of md5(customer_id), 0-4095) and the rank of the next 24 bits (the
    # position of their first 1 bit, 1-25), the same on both engines and in Python.
    "customer_register": _hex_value(CUSTOMER_MD5, 1, 3),
    "customer_rank": f"(CASE WHEN ({_hex_value(CUSTOMER_MD5, 4, 6)}) = 0 THEN 25 "
    f"ELSE 24 - CAST(floor(log2({_hex_value(CUSTOMER_MD5, 4, 6)})) AS INTEGER) END)",
}
