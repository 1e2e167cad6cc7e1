"""Reading infra/template.yaml (CloudFormation's short-form tags kept as dicts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sales_ops.settings import PROJECT_ROOT

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]

TEMPLATE_PATH = PROJECT_ROOT / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...) as JSON form."""


def _construct_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def read_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict, short tags expanded (`!Ref X` -> {"Ref": "X"})."""
    return yaml.load(Path(path).read_text(), Loader=_CfnLoader)


def template_parameters(template: dict[str, Any]) -> set[str]:
    """Names of the template's parameters."""
    return set(template.get("Parameters", {}))
