"""The CloudFormation stack of infra/template.yaml: package, deploy, destroy, and read its outputs.

`settings_from_stack` is how the `aws` target finds its resources: every name in `Settings` comes
from the stack's Outputs, so `SALES_OPS_TARGET=aws` needs nothing else configured.

Every function takes a `ClientFactory` (service name -> boto3 client), so tests point it at an
emulator; without one, the default credential chain and `region` are used. AWS failures that a
user can fix (no credentials, rejected credentials, missing stack, failed deployment) surface as
`SettingsError` (or its subclass `StackError`) with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError

from sales_ops.settings import Settings, SettingsError

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = PROJECT_ROOT / "infra" / "template.yaml"
HANDLER_PATH = PROJECT_ROOT / "lambdas" / "firehose_transform" / "handler.py"
DEFAULT_BUILD_DIR = Path(".sales-ops") / "build"

# The Lambda's platform: keep in step with Runtime/Architectures of TransformFunction in the template.
LAMBDA_PYTHON = "3.11"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
ORJSON_VERSION = "3.13.0"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates go through S3 (TemplateURL)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

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

# Statuses in which the stack's resources and outputs are there to use (an update may be running).
READY_PREFIXES = ("CREATE_COMPLETE", "UPDATE_", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}

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


class StackError(SettingsError):
    """Deploying or destroying the stack failed; the message says why and what to do."""


# ----------------------------------------------------------------------------- clients and errors


def make_clients(
    region: str, session: boto3.session.Session | None = None, endpoint_url: str | None = None
) -> ClientFactory:
    """A cached service -> client factory for `region` (and `endpoint_url`, for an emulator)."""
    session = session or boto3.session.Session(region_name=region)
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(
                service, region_name=region, endpoint_url=endpoint_url, config=config
            )
        return cache[service]

    return client


def default_region(env: dict[str, str] | None = None) -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region, else us-east-1."""
    env = os.environ if env is None else env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        with contextlib.suppress(BotoCoreError):
            region = boto3.session.Session().region_name
    return region or "us-east-1"


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn credential and connection failures while `doing` something into a clear SettingsError."""
    try:
        yield
    except NoCredentialsError as exc:
        raise SettingsError(
            f"No AWS credentials found while {doing}. Configure them (aws configure, aws sso login, "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and try again."
        ) from exc
    except ClientError as exc:
        if _code(exc) in CREDENTIAL_CODES:
            raise SettingsError(
                f"AWS rejected the credentials while {doing} ({_code(exc)}): refresh them "
                "(aws sso login, new session token) and try again."
            ) from exc
        raise StackError(f"AWS refused a call while {doing}: {exc}") from exc
    except BotoCoreError as exc:  # expired SSO token, unknown profile, no network, ...
        raise SettingsError(
            f"AWS call failed while {doing}: {exc}. Check your AWS credentials, profile and region."
        ) from exc


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# ----------------------------------------------------------------------------- reading the stack


def describe_stack(stack_name: str, clients: ClientFactory) -> dict[str, Any] | None:
    """The stack's description, or None when no stack of that name exists."""
    try:
        return clients("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if _code(exc) == "ValidationError" and "does not exist" in str(exc):
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
        **{k: v for k, v in names.items() if k in known},
    )


# ----------------------------------------------------------------------------- the template


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


def template_parameters(template: dict[str, Any]) -> set[str]:
    """Names of the template's parameters."""
    return set(template.get("Parameters", {}))


# ----------------------------------------------------------------------------- Lambda package


def package_lambda(
    build_dir: Path = DEFAULT_BUILD_DIR,
    handler: Path = HANDLER_PATH,
    with_orjson: bool = True,
    wheel_dir: Path | None = None,
) -> tuple[Path, str]:
    """Zip the Lambda (handler.py, plus orjson built for the Lambda's platform) reproducibly.

    Entries are sorted with fixed timestamps and modes, so the same sources give the same bytes;
    returns (zip path, sha256 hex). orjson's wheel is fetched once into `wheel_dir` (default
    `build_dir/wheels`) with pip; the handler works without it (`with_orjson=False`).
    """
    handler = Path(handler)
    if not handler.is_file():
        raise StackError(f"Lambda handler not found at {handler}: run from the project checkout.")
    files = {"handler.py": handler.read_bytes()}
    if with_orjson:
        files.update(_wheel_files(_orjson_wheel(Path(wheel_dir or Path(build_dir) / "wheels"))))
    data = _zip_bytes(files)
    digest = hashlib.sha256(data).hexdigest()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"firehose_transform-{digest[:16]}.zip"
    path.write_bytes(data)
    return path, digest


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.create_system = 3  # unix, so the modes above are honoured
            archive.writestr(info, files[name])
    return buffer.getvalue()


def _orjson_wheel(wheel_dir: Path) -> Path:
    pattern = f"orjson-{ORJSON_VERSION}-cp{LAMBDA_PYTHON.replace('.', '')}-*x86_64*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", f"orjson=={ORJSON_VERSION}", "--no-deps",
        "--only-binary=:all:", "--platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON,
        "--implementation", "cp", "--dest", str(wheel_dir), "--quiet",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheel_dir.glob(pattern))
    if result.returncode != 0 or not found:
        raise StackError(
            f"Could not download orjson {ORJSON_VERSION} for the Lambda ({result.stderr.strip()[-300:]}); "
            "deploy without it (--no-orjson): the handler runs on the standard library alone."
        )
    return found[0]


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


# ----------------------------------------------------------------------------- artifacts


def artifacts_bucket_name(account: str, region: str) -> str:
    """The default bucket for deployment artifacts (the Lambda zip, large templates)."""
    return f"sales-ops-artifacts-{account}-{region}"


def ensure_artifacts_bucket(bucket: str, region: str, clients: ClientFactory) -> None:
    """Create `bucket` if needed: private (public access blocked), encrypted, TLS only."""
    s3 = clients("s3")
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise StackError(f"Artifacts bucket {bucket} exists but is not usable: {exc}") from exc
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **extra)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if s3.meta.endpoint_url.startswith("https://"):  # a plain-http emulator would be locked out
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(_tls_only_policy(bucket)))


def _tls_only_policy(bucket: str) -> dict[str, Any]:
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def upload_once(path: Path, bucket: str, key: str, clients: ClientFactory) -> None:
    """Upload `path` to s3://bucket/key unless that (content-addressed) key is already there."""
    s3 = clients("s3")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return
    except ClientError as exc:
        if _code(exc) not in ("403", "404", "NoSuchKey", "NotFound"):  # 403: no s3:ListBucket
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())


# ----------------------------------------------------------------------------- deploy


def deploy(
    stack_name: str = "sales-ops",
    region: str = "us-east-1",
    *,
    clients: ClientFactory | None = None,
    template: dict[str, Any] | None = None,
    template_path: Path = TEMPLATE_PATH,
    parameters: dict[str, str] | None = None,
    artifacts_bucket: str | None = None,
    with_orjson: bool = True,
    build_dir: Path = DEFAULT_BUILD_DIR,
    handler: Path = HANDLER_PATH,
    progress: Progress | None = None,
    poll_seconds: int = 5,
) -> dict[str, str]:
    """Package and upload the Lambda, create or update the stack through a change set, wait.

    `template` (a dict) replaces the file at `template_path` (tests deploy `emulator_subset`).
    `parameters` override template parameters; on an update, parameters not given keep their
    previous values. Returns the stack's outputs.
    """
    with aws_errors(f"deploying stack {stack_name!r} to {region}"):
        clients = clients or make_clients(region)
        account = clients("sts").get_caller_identity()["Account"]
        _say(progress, f"account {account}, region {region}, stack {stack_name}")
        bucket = artifacts_bucket or artifacts_bucket_name(account, region)
        ensure_artifacts_bucket(bucket, region, clients)
        code_key = _upload_code(bucket, clients, build_dir, handler, with_orjson, progress)
        body = json.dumps(template) if template is not None else Path(template_path).read_text()
        names = template_parameters(template if template is not None else read_template(template_path))
        params = {**(parameters or {}), "LambdaCodeBucket": bucket, "LambdaCodeKey": code_key}
        source = _template_source(body, bucket, region, clients)
        _apply_change_set(stack_name, source, params, names, clients, progress, poll_seconds)
        stack = describe_stack(stack_name, clients) or {}
    return stack_outputs(stack)


def _upload_code(
    bucket: str,
    clients: ClientFactory,
    build_dir: Path,
    handler: Path,
    with_orjson: bool,
    progress: Progress | None,
) -> str:
    path, digest = package_lambda(build_dir, handler, with_orjson)
    key = f"lambda/orders-firehose-transform-{digest[:16]}.zip"
    upload_once(path, bucket, key, clients)
    _say(progress, f"Lambda package {path.name} ({path.stat().st_size} bytes) at s3://{bucket}/{key}")
    return key


def _template_source(body: str, bucket: str, region: str, clients: ClientFactory) -> dict[str, str]:
    """TemplateBody, or for a template over CloudFormation's inline limit, its S3 URL."""
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    key = f"templates/{hashlib.sha256(body.encode()).hexdigest()[:16]}.template"
    clients("s3").put_object(Bucket=bucket, Key=key, Body=body.encode())
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}


def _apply_change_set(
    stack_name: str,
    source: dict[str, str],
    params: dict[str, str],
    names: set[str],
    clients: ClientFactory,
    progress: Progress | None,
    poll_seconds: int,
) -> None:
    cfn = clients("cloudformation")
    kind, previous = _change_set_type(stack_name, clients, progress, poll_seconds)
    change_set = f"{stack_name}-{time.strftime('%Y%m%d%H%M%S')}"
    _say(progress, f"creating change set {change_set} ({kind})")
    try:
        cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set,
            ChangeSetType=kind,
            Parameters=_parameter_list(params, names, previous),
            Capabilities=CAPABILITIES,
            Tags=[{"Key": "project", "Value": "sales-ops"}],
            **source,
        )
    except ClientError as exc:  # some endpoints refuse an empty change set up front
        if not any(text in str(exc) for text in NO_CHANGES):
            raise
        _say(progress, "no changes: the stack is up to date")
        return
    if not _wait_change_set(stack_name, change_set, clients, progress, poll_seconds):
        return
    _say(progress, "executing change set")
    cfn.execute_change_set(StackName=stack_name, ChangeSetName=change_set)
    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    _wait_stack(stack_name, waiter, clients, progress, poll_seconds)
    _say(progress, f"stack {stack_name} is {'created' if kind == 'CREATE' else 'updated'}")


def _change_set_type(
    stack_name: str, clients: ClientFactory, progress: Progress | None, poll_seconds: int
) -> tuple[str, set[str]]:
    """("CREATE" or "UPDATE", parameter names the existing stack has), clearing a dead stack first."""
    stack = describe_stack(stack_name, clients)
    status = stack["StackStatus"] if stack else None
    if status is None or status == "REVIEW_IN_PROGRESS":
        return "CREATE", set()
    if status == "ROLLBACK_COMPLETE":
        _say(progress, f"stack {stack_name} failed to create earlier (ROLLBACK_COMPLETE): deleting it first")
        clients("cloudformation").delete_stack(StackName=stack_name)
        _wait_stack(stack_name, "stack_delete_complete", clients, progress, poll_seconds)
        return "CREATE", set()
    if status.endswith("_IN_PROGRESS"):
        raise StackError(f"Stack {stack_name} is busy ({status}); wait for it to finish and retry.")
    if status.endswith("_FAILED"):
        raise StackError(
            f"Stack {stack_name} is {status}: fix it in the CloudFormation console "
            "(or `sales-ops destroy`) before deploying again."
        )
    return "UPDATE", {p["ParameterKey"] for p in stack.get("Parameters", [])}


def _parameter_list(params: dict[str, str], names: set[str], previous: set[str]) -> list[dict[str, Any]]:
    unknown = set(params) - names
    if unknown:
        raise StackError(f"Unknown template parameters: {', '.join(sorted(unknown))}")
    given = [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(params.items())]
    kept = [{"ParameterKey": k, "UsePreviousValue": True} for k in sorted((previous & names) - set(params))]
    return given + kept


def _wait_change_set(
    stack_name: str, change_set: str, clients: ClientFactory, progress: Progress | None, poll_seconds: int
) -> bool:
    """True when the change set is ready to execute, False when it holds no changes."""
    cfn = clients("cloudformation")
    try:
        cfn.get_waiter("change_set_create_complete").wait(
            StackName=stack_name, ChangeSetName=change_set, WaiterConfig={"Delay": poll_seconds}
        )
    except WaiterError as exc:
        described = cfn.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
        reason = described.get("StatusReason", "")
        if any(text in reason for text in NO_CHANGES):
            cfn.delete_change_set(StackName=stack_name, ChangeSetName=change_set)
            _say(progress, "no changes: the stack is up to date")
            return False
        raise StackError(f"Change set {change_set} failed: {reason or exc}") from exc
    described = cfn.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
    for change in described.get("Changes", []):
        rc = change.get("ResourceChange", {})
        _say(
            progress, f"  {rc.get('Action', '?'):<8} {rc.get('LogicalResourceId')} ({rc.get('ResourceType')})"
        )
    return True


def _wait_stack(
    stack_name: str, waiter: str, clients: ClientFactory, progress: Progress | None, poll_seconds: int
) -> None:
    _say(progress, f"waiting for {waiter.replace('_', ' ')}")
    try:
        clients("cloudformation").get_waiter(waiter).wait(
            StackName=stack_name, WaiterConfig={"Delay": poll_seconds, "MaxAttempts": 720}
        )
    except WaiterError as exc:
        raise StackError(
            f"Stack {stack_name} did not reach {waiter.split('_')[1].upper()}_COMPLETE.\n"
            + "\n".join(failure_reasons(stack_name, clients))
        ) from exc


def failure_reasons(stack_name: str, clients: ClientFactory, limit: int = 10) -> list[str]:
    """The latest failed events of the stack, as 'LogicalId (Type): reason' lines."""
    try:
        events = clients("cloudformation").describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return []
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")]
    return [
        f"  {e['LogicalResourceId']} ({e.get('ResourceType')}): {e.get('ResourceStatusReason', '')}"
        for e in failed[:limit]
    ]


# ----------------------------------------------------------------------------- destroy


def empty_bucket(bucket: str, clients: ClientFactory, progress: Progress | None = None) -> int:
    """Delete every object version and delete marker in `bucket`; returns how many were deleted."""
    s3 = clients("s3")
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
        deleted += len(keys)
    _say(progress, f"emptied s3://{bucket} ({deleted} object versions)")
    return deleted


def destroy(
    stack_name: str = "sales-ops",
    region: str = "us-east-1",
    *,
    clients: ClientFactory | None = None,
    delete_artifacts: bool = False,
    progress: Progress | None = None,
    poll_seconds: int = 5,
) -> bool:
    """Empty the data bucket and delete the stack (and, if asked, the artifacts bucket); wait.

    Returns False when there was no stack to delete.
    """
    with aws_errors(f"destroying stack {stack_name!r} in {region}"):
        clients = clients or make_clients(region)
        account = clients("sts").get_caller_identity()["Account"]
        stack = describe_stack(stack_name, clients)
        if stack is None:
            _say(progress, f"no stack {stack_name} in {region}: nothing to delete")
        else:
            _delete_stack(stack_name, stack, clients, progress, poll_seconds)
        if delete_artifacts:
            _delete_bucket(artifacts_bucket_name(account, region), clients, progress)
    return stack is not None


def _delete_stack(
    stack_name: str, stack: dict[str, Any], clients: ClientFactory, progress: Progress | None, poll: int
) -> None:
    bucket = stack_outputs(stack).get("BucketName")
    for attempt in (1, 2):  # Firehose may write to the bucket until it is deleted itself: retry once
        if bucket and _bucket_exists(bucket, clients):
            empty_bucket(bucket, clients, progress)
        _say(progress, f"deleting stack {stack_name}")
        clients("cloudformation").delete_stack(StackName=stack_name)
        try:
            _wait_stack(stack_name, "stack_delete_complete", clients, progress, poll)
            break
        except StackError:
            if attempt == 2:
                raise
    _say(progress, f"stack {stack_name} deleted")


def _bucket_exists(bucket: str, clients: ClientFactory) -> bool:
    try:
        clients("s3").head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False


def _delete_bucket(bucket: str, clients: ClientFactory, progress: Progress | None) -> None:
    if not _bucket_exists(bucket, clients):
        return
    empty_bucket(bucket, clients, progress)
    clients("s3").delete_bucket(Bucket=bucket)
    _say(progress, f"deleted s3://{bucket}")
