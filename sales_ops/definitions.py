"""The Dagster code location: one `Definitions` merged from the areas in `sales_ops/defs/`.

Loaded by `workspace.yaml` (`dagster dev -w workspace.yaml`). The areas are merged explicitly
rather than discovered with `load_from_defs_folder`, so the list below is the whole inventory.
"""

import warnings
from typing import Any

import dagster as dg

# Observable source assets are "beta" in Dagster 1.13; the warning says nothing actionable here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from sales_ops.defs import resources  # noqa: E402
from sales_ops.defs.catalog import definitions as catalog  # noqa: E402
from sales_ops.defs.curated import backfill  # noqa: E402
from sales_ops.defs.curated import definitions as curated  # noqa: E402
from sales_ops.defs.ingest import definitions as ingest  # noqa: E402
from sales_ops.defs.operations import definitions as operations  # noqa: E402
from sales_ops.defs.quality import definitions as quality  # noqa: E402

# Each area is `sales_ops/defs/<area>/` (assets, checks, sensors, schedules) with one
# `definitions.py` listing what it contributes.
AREAS = (ingest.defs, catalog.defs, curated.defs, backfill.defs, quality.defs, operations.defs)

# Steps run in the run's own process: ours are short I/O-bound calls, and a subprocess per step
# (Dagster's default) cost ~5 s each, turning a 10 s refresh into a minute.
EXECUTOR = dg.in_process_executor


def build_definitions(resources_override: dict[str, Any] | None = None) -> dg.Definitions:
    """All areas with the default resources (from the environment), or the given ones (tests)."""
    bound = dg.Definitions(resources=resources_override) if resources_override else resources.defs
    return dg.Definitions.merge(bound, dg.Definitions(executor=EXECUTOR), *AREAS)


defs = build_definitions()
