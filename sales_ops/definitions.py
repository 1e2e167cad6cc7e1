"""The Dagster code location: one `Definitions` merged from the areas in `sales_ops/defs/`.

Loaded by `workspace.yaml` (`dagster dev -w workspace.yaml`). The areas are merged explicitly
rather than discovered with `load_from_defs_folder`, so the list below is the whole inventory.
"""

import warnings
from typing import Any

import dagster as dg

# Observable source assets are "beta" in Dagster 1.13; the warning says nothing actionable here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from sales_ops.defs import backfill, catalog, checks, curated, load, resources, schedules, sensors  # noqa: E402

AREAS = (load.defs, catalog.defs, curated.defs, checks.defs, sensors.defs, schedules.defs, backfill.defs)

# Steps run in the run's own process: ours are short I/O-bound calls, and a subprocess per step
# (Dagster's default) cost ~5 s each, turning a 10 s refresh into a minute.
EXECUTION = dg.Definitions(executor=dg.in_process_executor)


def build_definitions(resources_override: dict[str, Any] | None = None) -> dg.Definitions:
    """All areas with the default resources (from the environment), or the given ones (tests)."""
    bound = dg.Definitions(resources=resources_override) if resources_override else resources.defs
    return dg.Definitions.merge(bound, EXECUTION, *AREAS)


defs = build_definitions()
