"""The `sales-ops` command line. Every command has --help; data output has --json.

This module is the root app only: the global options, and each area's commands mounted in the
order --help lists them. The commands live beside the area they drive (`sales_ops/<area>/cli.py`);
what they share (consoles, errors, the selected settings) is `sales_ops/cli_common.py`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import typer.core

from sales_ops.backfill import cli as backfill_cli
from sales_ops.catalog import cli as catalog_cli
from sales_ops.cli_common import State
from sales_ops.curated import cli as curated_cli
from sales_ops.dashboard import cli as dashboard_cli
from sales_ops.deploy import cli as deploy_cli
from sales_ops.load import cli as load_cli
from sales_ops.local import cli as local_cli
from sales_ops.quality import cli as quality_cli
from sales_ops.query import cli as query_cli


def _help_type(original):
    """--help shows informative types only: none for flags (typer shows <bool>) or plain text (<str>)."""

    def display_type_rich(self, ctx):
        shown = None if getattr(self, "is_flag", False) else original(self, ctx)
        return None if shown == "<str>" else shown

    return display_type_rich


for _param in (typer.core.TyperOption, typer.core.TyperArgument):
    _param.display_type_rich = _help_type(_param.display_type_rich)  # type: ignore[method-assign]

app = typer.Typer(
    help="Operate the real-time sales pipeline: embedded AWS, load, catalogue, compaction, queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Without a name, an area's commands join the root's, in this order (--help lists them so); the
# `local` group comes last, as typer lists groups after commands.
AREAS = (deploy_cli, load_cli, catalog_cli, curated_cli, query_cli, quality_cli, backfill_cli, dashboard_cli)
for area in AREAS:
    app.add_typer(area.app)
app.add_typer(local_cli.app, name="local")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"sales-ops {version('sales-ops')}")
        raise typer.Exit()


@app.callback()
def main(
    target: Annotated[
        str | None,
        typer.Option(
            help="local (embedded, default) or aws (deployed stack); env SALES_OPS_TARGET.",
            metavar="local|aws",  # checked by Settings, which says what is wrong
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    State.target = target


if __name__ == "__main__":
    sys.exit(app())
