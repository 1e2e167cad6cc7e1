"""Reading the stack: how the `aws` target finds its resources.

Every name in `Settings` comes from the stack's Outputs, so `SALES_OPS_TARGET=aws` needs nothing else
configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from sales_ops.deploy.clients import READY_PREFIXES, aws_errors, make_clients
from sales_ops.settings import DEFAULT_SCAN_CUTOFF, Settings, SettingsError, error_code

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]

ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
SCAN_CUTOFF_PARAMETER = "AthenaBytesScannedCutoff"
# Settings field -> stack output that names it.
SETTINGS_OUTPUTS = {
    "bucket": "BucketName",
    "table": "TableName",
    "kinesis_stream": "KinesisStreamName",
    "delivery_stream": "DeliveryStreamName",
    "pipe": "PipeName",
    "transform_function": "TransformFunctionName",
    "database": "GlueDatabaseName",
    "crawler": "CrawlerName",
    "workgroup": "AthenaWorkGroupName",
}


def describe_stack(stack_name: str, clients: ClientFactory) -> dict[str, Any] | None:
    """The stack's description, or None when no stack of that name exists."""
    try:
        return clients("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    """OutputKey -> OutputValue of a described stack."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def settings_from_stack(
    stack_name: str, region: str, state_dir: Path, clients: ClientFactory | None = None
) -> Settings:
    """Settings for the `aws` target, read from the Outputs of the deployed stack `stack_name`."""
    with aws_errors(f"reading stack {stack_name!r} in {region}"):
        stack = describe_stack(stack_name, clients or make_clients(region))
    if stack is None:
        raise SettingsError(
            f"No CloudFormation stack {stack_name!r} in region {region}: deploy it with "
            "`sales-ops deploy`, or point SALES_OPS_STACK / AWS_REGION at the deployed one."
        )
    if not stack["StackStatus"].startswith(READY_PREFIXES):
        raise SettingsError(
            f"Stack {stack_name!r} in {region} is {stack['StackStatus']}, not ready: "
            "wait for it, or run `sales-ops deploy` again."
        )
    outputs = stack_outputs(stack)
    missing = sorted(key for key in SETTINGS_OUTPUTS.values() if key not in outputs)
    if missing:
        raise SettingsError(
            f"Stack {stack_name!r} lacks outputs {', '.join(missing)}: it was deployed from another "
            "template; run `sales-ops deploy` to update it."
        )
    names = {name: outputs[key] for name, key in SETTINGS_OUTPUTS.items()}
    known = {f.name for f in fields(Settings)}
    return Settings(
        target="aws",
        region=region,
        account=stack["StackId"].split(":")[4],
        endpoint_url=None,
        stack_name=stack_name,
        state_dir=Path(state_dir),
        # Optional: a stack deployed before the alarms has no topic; alerts then use the webhook only.
        alarm_topic_arn=outputs.get(ALARM_TOPIC_OUTPUT),
        scan_cutoff_bytes=_scan_cutoff(stack),
        **{k: v for k, v in names.items() if k in known},
    )


def _scan_cutoff(stack: dict[str, Any]) -> int:
    """The workgroup's BytesScannedCutoffPerQuery, as the stack was deployed (its parameter)."""
    values = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    try:
        return int(values[SCAN_CUTOFF_PARAMETER])
    except (KeyError, TypeError, ValueError):  # a stack from an older template: the default
        return DEFAULT_SCAN_CUTOFF
