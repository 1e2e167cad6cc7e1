"""Curated: `orders_latest` (compaction) and the rollups, run by declarative automation."""

import dagster as dg
from sales_ops.defs.curated.assets import orders_latest, rollup_assets

defs = dg.Definitions(assets=dg.with_source_code_references([orders_latest, *rollup_assets]))
