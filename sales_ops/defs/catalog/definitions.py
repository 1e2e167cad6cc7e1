"""Catalog: the Glue table `raw_orders` and the crawler that creates it."""

import dagster as dg
from sales_ops.defs.catalog.assets import raw_orders_table

defs = dg.Definitions(assets=dg.with_source_code_references([raw_orders_table]))
