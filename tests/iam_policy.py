"""IAM for the tests: the template's policies resolved to real ARNs, evaluated with IAM's semantics,
and boto3 calls mapped to the IAM actions and resources they need.

Semantics (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
a request is allowed when some Allow statement matches it and no Deny statement does. A statement
matches when its Action (or everything but its NotAction) matches the action, case-insensitively,
with `*` and `?` wildcards, and its Resource (or everything but NotResource) matches the ARN,
case-sensitively, with the same wildcards. Conditions are not evaluated: a statement with a
Condition never matches here, which can only make the test stricter.

The action of a call is `<service prefix>:<operation>`, except for the operations IAM authorises
under another action (S3 listing and multipart uploads, Head* calls...): `ACTION_EXCEPTIONS`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

IAM_DATA = Path(__file__).resolve().parent / "data" / "iam_resource_types.json"

# botocore service id -> IAM service prefix (when they differ from the lower-cased id).
SERVICE_PREFIX = {"CloudWatch": "cloudwatch", "Firehose": "firehose", "Pipes": "pipes"}
# Operations authorised under another action (the service authorization reference's notes).
ACTION_EXCEPTIONS = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
}
# Calls that need no permission.
FREE = {"sts:GetCallerIdentity"}


@dataclass(frozen=True)
class Stack:
    """What Fn::Sub/Ref/GetAtt resolve to for a deployed stack."""

    params: dict[str, str]
    account: str = "123456789012"
    region: str = "us-east-1"
    stack_name: str = "sales-ops"
    partition: str = "aws"
    bucket_name: str | None = None  # what the emulator holds, instead of the stack's naming rule

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/0000"
        )

    @property
    def bucket(self) -> str:
        if self.bucket_name:
            return self.bucket_name
        return f"{self.params['BucketPrefix']}-{self.account}-{self.region}"

    def arn(self, service: str, rest: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{rest}"


def template_params(template: dict[str, Any], **overrides: str) -> dict[str, str]:
    params = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    return {**params, **overrides}


def resolve(node: Any, stack: Stack, template: dict[str, Any]) -> Any:
    """A policy value with its intrinsic functions replaced by the stack's real names and ARNs."""
    if isinstance(node, list):
        return [resolve(n, stack, template) for n in node]
    if not isinstance(node, dict):
        return node
    if "Ref" in node:
        return _ref(node["Ref"], stack, template)
    if "Fn::GetAtt" in node:
        lid, attr = (
            node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".")
        )
        return _getatt(lid, attr, stack, template)
    if "Fn::Sub" in node:
        text = node["Fn::Sub"]

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if "." in name:
                return _getatt(*name.split(".", 1), stack, template)
            return _ref(name, stack, template)

        return re.sub(r"\$\{([^!}][^}]*)\}", sub, text)
    return {k: resolve(v, stack, template) for k, v in node.items()}


_PSEUDO = {"AWS::Partition": "partition", "AWS::Region": "region", "AWS::AccountId": "account"}


def _ref(name: str, stack: Stack, template: dict[str, Any]) -> str:
    if name in _PSEUDO:
        return getattr(stack, _PSEUDO[name])
    if name == "AWS::StackName":
        return stack.stack_name
    if name == "AWS::StackId":
        return stack.stack_id
    if name in stack.params:
        return stack.params[name]
    resource = template["Resources"][name]
    kind, props = resource["Type"], resource.get("Properties", {})
    names = {
        "AWS::S3::Bucket": lambda: stack.bucket,
        "AWS::DynamoDB::Table": lambda: resolve(props["TableName"], stack, template),
        "AWS::Kinesis::Stream": lambda: resolve(props["Name"], stack, template),
        "AWS::Glue::Database": lambda: resolve(props["DatabaseInput"]["Name"], stack, template),
        "AWS::Glue::Crawler": lambda: resolve(props["Name"], stack, template),
        "AWS::Athena::WorkGroup": lambda: resolve(props["Name"], stack, template),
        "AWS::Logs::LogGroup": lambda: resolve(props["LogGroupName"], stack, template),
        "AWS::KinesisFirehose::DeliveryStream": lambda: resolve(props["DeliveryStreamName"], stack, template),
        "AWS::Lambda::Function": lambda: resolve(props["FunctionName"], stack, template),
        "AWS::SQS::Queue": lambda: (
            f"https://sqs.{stack.region}.amazonaws.com/{stack.account}/"
            + resolve(props["QueueName"], stack, template)
        ),
        "AWS::SNS::Topic": lambda: stack.arn("sns", resolve(props["TopicName"], stack, template)),
        # The Dagster stack (infra/dagster.yaml): names CloudFormation generates from the logical id.
        "AWS::ECS::Cluster": lambda: f"{stack.stack_name}-{name}",
        "AWS::IAM::Role": lambda: f"{stack.stack_name}-{name}",
        "AWS::RDS::DBInstance": lambda: f"{stack.stack_name}-{name}".lower(),
        "AWS::ECS::TaskDefinition": lambda: stack.arn(
            "ecs", f"task-definition/{resolve(props['Family'], stack, template)}:1"
        ),
    }
    return names[kind]()


def _getatt(lid: str, attr: str, stack: Stack, template: dict[str, Any]) -> str:
    kind = template["Resources"][lid]["Type"]
    name = _ref(lid, stack, template)
    if kind == "AWS::S3::Bucket" and attr == "Arn":
        return f"arn:{stack.partition}:s3:::{name}"
    if kind == "AWS::DynamoDB::Table":
        table = stack.arn("dynamodb", f"table/{name}")
        return table if attr == "Arn" else f"{table}/stream/2026-01-01T00:00:00.000"
    if kind == "AWS::Kinesis::Stream":
        return stack.arn("kinesis", f"stream/{name}")
    if kind == "AWS::SQS::Queue":
        queue = name.rsplit("/", 1)[-1]
        return stack.arn("sqs", queue) if attr == "Arn" else queue
    if kind == "AWS::Lambda::Function":
        return stack.arn("lambda", f"function:{name}")
    if kind == "AWS::Logs::LogGroup":
        return stack.arn("logs", f"log-group:{name}:*")
    if kind == "AWS::ECS::Cluster" and attr == "Arn":
        return stack.arn("ecs", f"cluster/{name}")
    if kind == "AWS::IAM::Role" and attr == "Arn":
        return f"arn:{stack.partition}:iam::{stack.account}:role/{name}"
    if kind == "AWS::RDS::DBInstance" and attr == "MasterUserSecret.SecretArn":
        return stack.arn("secretsmanager", f"secret:rds!db-{name}-AbCdEf")
    raise KeyError(f"GetAtt {lid}.{attr} ({kind}) is not modelled")


# ------------------------------------------------------------------------------------------- eval


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: list[str], value: str, case_sensitive: bool) -> bool:
    if not case_sensitive:
        return any(fnmatchcase(value.lower(), p.lower()) for p in patterns)
    return any(fnmatchcase(value, p) for p in patterns)


# The condition operators the templates use, each as IAM evaluates it (every key must match).
_CONDITIONS = {"StringEquals": lambda want, got: got == want, "ArnEquals": lambda want, got: got == want}


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """A statement's Condition against the request's context keys (a missing key fails, as in IAM)."""
    for operator, keys in condition.items():
        test = _CONDITIONS.get(operator)
        if test is None:  # not modelled: never assume a grant
            return False
        for key, want in keys.items():
            if key not in context or not any(test(w, context[key]) for w in _as_list(want)):
                return False
    return True


def _statement_matches(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    if "Condition" in statement and not _condition_holds(statement["Condition"], context or {}):
        return False
    if "Action" in statement:
        action_ok = _matches(_as_list(statement["Action"]), action, case_sensitive=False)
    else:
        action_ok = not _matches(_as_list(statement["NotAction"]), action, case_sensitive=False)
    if "Resource" in statement:
        resource_ok = _matches(_as_list(statement["Resource"]), resource, case_sensitive=True)
    else:
        resource_ok = not _matches(_as_list(statement["NotResource"]), resource, case_sensitive=True)
    return action_ok and resource_ok


def allowed(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """IAM's decision for one action on one resource under these (resolved) statements, with the
    request's condition keys in `context`."""
    matching = [s for s in statements if _statement_matches(s, action, resource, context)]
    return not any(s["Effect"] == "Deny" for s in matching) and any(s["Effect"] == "Allow" for s in matching)


# ------------------------------------------------------------------------------------------ calls


@dataclass
class Call:
    action: str
    resources: list[str]  # every one must be allowed
    operation: str = ""


@dataclass
class Recorder:
    """Records every AWS call made through the sessions it is attached to (botocore event hooks)."""

    stack: Stack
    workgroup: str
    calls: list[Call] = field(default_factory=list)

    def attach(self, session: Any) -> None:
        # before-parameter-build sees the operation's own parameters (before-call sees the wire form).
        session.events.register("before-parameter-build", self._before_call)

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service_id = model.service_model.service_id
        prefix = SERVICE_PREFIX.get(service_id, service_id.lower().replace(" ", ""))
        operation = f"{prefix}:{model.name}"
        if operation in FREE:
            return
        try:
            calls = self.map(prefix, model.name, params)
        except (KeyError, AssertionError) as exc:  # recorded, so the test fails and names the call
            calls = [Call(operation, [f"unmapped: {exc!r}"])]
        for call in calls:
            call.operation = operation
            self.calls.append(call)

    def map(self, prefix: str, name: str, params: dict[str, Any]) -> list[Call]:
        action = ACTION_EXCEPTIONS.get(f"{prefix}:{name}", f"{prefix}:{name}")
        mapper = getattr(self, f"_{prefix}", None)
        if mapper is None:
            raise AssertionError(f"no IAM mapping for {prefix}:{name}: add one to tests/iam_policy.py")
        return mapper(action, name, params)

    def _s3(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        if name == "ListBuckets":
            return [Call("s3:ListAllMyBuckets", ["*"])]
        bucket = f"arn:{self.stack.partition}:s3:::{params['Bucket']}"
        if name == "DeleteObjects":
            keys = [o["Key"] for o in params["Delete"]["Objects"]]
            return [Call(action, [f"{bucket}/{k}"]) for k in keys]
        if "Key" in params:
            return [Call(action, [f"{bucket}/{params['Key']}"])]
        return [Call(action, [bucket])]

    def _dynamodb(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        tables = list(params["RequestItems"]) if "RequestItems" in params else [params["TableName"]]
        return [Call(action, [self.stack.arn("dynamodb", f"table/{t}")]) for t in tables]

    def _glue(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        if name in ("StartCrawler", "GetCrawler", "StopCrawler"):
            return [Call(action, [self.stack.arn("glue", f"crawler/{params['Name']}")])]
        if name == "GetCrawlerMetrics":
            return [Call(action, ["*"])]
        # Glue authorises a catalog call on the catalog and every level down to the object.
        database = (
            params.get("DatabaseName") or params.get("DatabaseInput", {}).get("Name") or params.get("Name")
        )
        chain = [self.stack.arn("glue", "catalog"), self.stack.arn("glue", f"database/{database}")]
        table = params.get("TableName") or params.get("TableInput", {}).get("Name")
        if name in ("GetTables",):
            table = "*"
        if name == "BatchDeleteTable":
            return [
                Call(action, [*chain, self.stack.arn("glue", f"table/{database}/{t}")])
                for t in params["TablesToDelete"]
            ]
        if table:
            chain.append(self.stack.arn("glue", f"table/{database}/{table}"))
        return [Call(action, chain)]

    def _athena(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        workgroup = params.get("WorkGroup") or self.workgroup
        calls = [Call(action, [self.stack.arn("athena", f"workgroup/{workgroup}")])]
        if name == "StartQueryExecution":
            # What Athena itself does with the caller's permissions on every query: look up the
            # default database and the session's database (the Athena doc cited in the template).
            database = params.get("QueryExecutionContext", {}).get("Database", "default")
            for db in {"default", database}:
                chain = [self.stack.arn("glue", "catalog"), self.stack.arn("glue", f"database/{db}")]
                calls.append(Call("glue:GetDatabase", chain))
        return calls

    def _cloudwatch(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        return [Call(action, ["*"])]  # metrics have no ARNs

    def _cloudformation(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        return [Call(action, [self.stack.stack_id])]

    def _kinesis(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        return [Call(action, [self.stack.arn("kinesis", f"stream/{params['StreamName']}")])]

    def _firehose(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        return [Call(action, [self.stack.arn("firehose", f"deliverystream/{params['DeliveryStreamName']}")])]

    def _sns(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        return [Call(action, [params["TopicArn"]])]

    def _sqs(self, action: str, name: str, params: dict[str, Any]) -> list[Call]:
        queue = params.get("QueueUrl", params.get("QueueName", "")).rsplit("/", 1)[-1]
        return [Call(action, [self.stack.arn("sqs", queue)])]


def load_iam_data() -> dict[str, Any]:
    return json.loads(IAM_DATA.read_text())
