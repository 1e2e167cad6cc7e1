"""The order contract (DESIGN §2.1) as the package uses it.

The Lambda in lambdas/firehose_transform/ is one standalone file and keeps its own copy of this
list; tests/test_pipeline.py asserts the two are identical.
"""

from __future__ import annotations

ORDER_ATTRIBUTES: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "order_total",
    "status",
    "channel",
    "region",
    "created_at",
    "updated_at",
)
# Everything that describes an order apart from its key: what a reconciliation compares.
ORDER_VALUE_FIELDS: tuple[str, ...] = ORDER_ATTRIBUTES[1:]
