"""`sales-ops deploy` and `sales-ops destroy`: the CloudFormation stacks on AWS."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sales_ops import deploy as cfn
from sales_ops.cli_common import console, err, fail, friendly_errors
from sales_ops.settings import Settings

app = typer.Typer()

StackOption = Annotated[
    str, typer.Option("--stack", envvar="SALES_OPS_STACK", help="CloudFormation stack name.")
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: AWS_REGION or the profile's).")]


@app.command("deploy")
def deploy(
    stack: StackOption = "sales-ops",
    region: RegionOption = None,
    parameter: Annotated[
        list[str] | None, typer.Option("--parameter", help="Template parameter KEY=VALUE (repeatable).")
    ] = None,
    artifacts_bucket: Annotated[str | None, typer.Option(help="Bucket for the Lambda package.")] = None,
    no_orjson: Annotated[
        bool, typer.Option("--no-orjson", help="Package the Lambda without orjson.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stack outputs as JSON.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Create the change set, print the changes, delete it.")
    ] = False,
    dagster: Annotated[
        bool,
        typer.Option(
            "--dagster",
            help="Deploy the Dagster control plane (infra/dagster.yaml) beside the stack instead; "
            "first time: --parameter VpcId=… PrivateSubnetIds=a,b Image=….",
        ),
    ] = False,
) -> None:
    """Package the Lambda, then create or update the stack in infra/ through a change set."""
    params = {}
    for item in parameter or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--parameter wants KEY=VALUE, got {item!r}", 2)
        params[key] = value
    with friendly_errors():
        if dagster:
            outputs = cfn.deploy_dagster(
                stack, region or cfn.default_region(), parameters=params, progress=err.print, dry_run=dry_run
            )
        else:
            outputs = cfn.deploy(
                stack,
                region or cfn.default_region(),
                parameters=params,
                artifacts_bucket=artifacts_bucket,
                with_orjson=not no_orjson,
                build_dir=Settings.from_env("local").state_dir / "build",
                progress=err.print,
                dry_run=dry_run,
            )
    if dry_run:
        return
    if as_json:
        print(json.dumps(outputs, indent=2))
    else:
        for key, value in sorted(outputs.items()):
            console.print(f"{key:28} {value}")


@app.command("destroy")
def destroy(
    stack: StackOption = "sales-ops",
    region: RegionOption = None,
    delete_artifacts: Annotated[bool, typer.Option(help="Also delete the Lambda artifacts bucket.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Detach the operator policy from users/roles/groups first.")
    ] = False,
) -> None:
    """Delete the Dagster stack if any, empty the data bucket and delete the stack."""
    if not yes and not typer.confirm(
        f"Delete stack {stack} (and {cfn.dagster_stack_name(stack)} if deployed) "
        "and every object in its bucket?"
    ):
        raise typer.Exit(1)
    with friendly_errors():
        existed = cfn.destroy(
            stack,
            region or cfn.default_region(),
            delete_artifacts=delete_artifacts,
            detach=detach,
            progress=err.print,
        )
    console.print(f"stack {stack} deleted" if existed else f"no stack named {stack}")
