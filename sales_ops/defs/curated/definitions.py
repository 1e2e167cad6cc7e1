"""Curated: `orders_latest` (compaction) and the rollups, run by declarative automation; the
backfill (`backfill.py`). `load_defs` reads a folder's `definitions.py` only: it lists both."""

import dagster as dg
from sales_ops.defs.curated import backfill
from sales_ops.defs.curated.assets import orders_latest, rollup_assets

defs = dg.Definitions.merge(
    dg.Definitions(assets=dg.with_source_code_references([orders_latest, *rollup_assets])),
    backfill.defs,
)
