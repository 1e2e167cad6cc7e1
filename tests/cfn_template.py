"""Template analysis used only by the infra tests: references, and the subset moto can deploy."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]

# The resource types moto's CloudFormation creates (moto 5.2; tests check this against moto).
EMULATOR_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::IAM::ManagedPolicy",
        "AWS::Logs::LogGroup",
        "AWS::Lambda::Function",
        "AWS::SNS::Topic",
    }
)
# Where a resource keeps its name, for outputs that `Ref` a resource the emulator cannot create.
NAME_PROPERTIES = {
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",),
    "AWS::Pipes::Pipe": ("Name",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Crawler": ("Name",),
    "AWS::Athena::WorkGroup": ("Name",),
}


def references(node: Any) -> set[str]:
    """Logical ids and parameters that `node` refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= _sub_names(text)
                found |= references(value[1] if isinstance(value, list) else None)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def _sub_names(text: str) -> set[str]:
    return {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}


def emulator_subset(template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The part of `template` that moto's CloudFormation can create, and the logical ids dropped.

    Drops resources whose type moto does not model (Pipe, Firehose, Glue, Athena, bucket policy,
    log stream) and, transitively, resources that refer to a dropped one. An output that `Ref`s a
    dropped resource keeps the name the resource would have had; other such outputs are dropped.
    """
    resources = template["Resources"]
    dropped = {lid for lid, res in resources.items() if res["Type"] not in EMULATOR_TYPES}
    changed = True
    while changed:
        extra = {lid for lid, res in resources.items() if lid not in dropped and references(res) & dropped}
        dropped |= extra
        changed = bool(extra)
    subset = {k: v for k, v in template.items() if k not in ("Resources", "Outputs", "Metadata")}
    subset["Resources"] = {k: v for k, v in resources.items() if k not in dropped}
    subset["Outputs"] = {}
    for key, output in template.get("Outputs", {}).items():
        value = _emulator_output(output["Value"], resources, dropped)
        if value is not None:
            subset["Outputs"][key] = {**output, "Value": value}
    return subset, sorted(dropped)


def _emulator_output(value: Any, resources: dict[str, Any], dropped: set[str]) -> Any:
    if not references(value) & dropped:
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        resource = resources[value["Ref"]]
        name: Any = resource.get("Properties", {})
        for part in NAME_PROPERTIES.get(resource["Type"], ("?",)):
            name = name.get(part) if isinstance(name, dict) else None
        return name
    return None
