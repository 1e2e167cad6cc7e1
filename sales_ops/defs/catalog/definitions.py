"""Catalog: the Glue table `raw_orders` and the crawler that keeps it current."""

import dagster as dg

from sales_ops.defs.catalog.assets import crawl_job, raw_orders_table
from sales_ops.defs.catalog.schedules import crawl_schedule

defs = dg.Definitions(assets=[raw_orders_table], jobs=[crawl_job], schedules=[crawl_schedule])
