"""The CloudFormation stack of infra/template.yaml: package, deploy, destroy, and read its outputs.

`settings_from_stack` (sales_ops/settings.py) is how the `aws` target finds its resources: every
name in `Settings` comes from the stack's Outputs, so `SALES_OPS_TARGET=aws` needs nothing else
configured.

Every function takes a `ClientFactory` (service name -> boto3 client), so tests point it at an
emulator; without one, the default credential chain and `region` are used. AWS failures that a
user can fix (no credentials, rejected credentials, missing stack, failed deployment) surface as
`SettingsError` (or its subclass `StackError`) with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from sales_ops.deploy.package import DEFAULT_BUILD_DIR, package_lambda
from sales_ops.deploy.template import TEMPLATE_PATH, read_template, template_parameters
from sales_ops.settings import (
    HANDLER_PATH,
    ClientFactory,
    StackError,
    aws_errors,
    describe_stack,
    error_code,
    make_clients,
    stack_outputs,
)

Progress = Callable[[str], None]

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates go through S3 (TemplateURL)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


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
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
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
        if error_code(exc) not in ("403", "404", "NoSuchKey", "NotFound"):  # 403: no s3:ListBucket
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
    dry_run: bool = False,
) -> dict[str, str]:
    """Package and upload the Lambda, create or update the stack through a change set, wait.

    `dry_run`: create the change set, print what it would change, delete it; the stack is left as
    it was (a stack created only to hold the change set, REVIEW_IN_PROGRESS, is deleted too).

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
        _apply_change_set(stack_name, source, params, names, clients, progress, poll_seconds, dry_run)
        stack = describe_stack(stack_name, clients) or {}
    return stack_outputs(stack)


# The control plane (issue 24): Dagster on ECS Fargate, a stack of its own beside the pipeline's.
DAGSTER_TEMPLATE_PATH = TEMPLATE_PATH.parent / "dagster.yaml"
DAGSTER_REQUIRED = ("VpcId", "PrivateSubnetIds", "Image")


def dagster_stack_name(stack_name: str) -> str:
    return f"{stack_name}-dagster"


def deploy_dagster(
    stack_name: str = "sales-ops",
    region: str = "us-east-1",
    *,
    clients: ClientFactory | None = None,
    parameters: dict[str, str] | None = None,
    progress: Progress | None = None,
    poll_seconds: int = 5,
    dry_run: bool = False,
) -> dict[str, str]:
    """Create or update `<stack_name>-dagster` (infra/dagster.yaml) from the pipeline stack's outputs
    (bucket, operator policy) and `parameters` (VpcId, PrivateSubnetIds, Image; kept on updates)."""
    with aws_errors(f"deploying stack {dagster_stack_name(stack_name)!r} to {region}"):
        clients = clients or make_clients(region)
        pipeline = describe_stack(stack_name, clients)
        if pipeline is None:
            raise StackError(
                f"no pipeline stack {stack_name!r} in {region}: deploy it first (sales-ops deploy)"
            )
        outputs = stack_outputs(pipeline)
        params = {
            "PipelineStackName": stack_name,
            "DataBucketName": outputs["BucketName"],
            "OperatorPolicyArn": outputs["OperatorPolicyArn"],
            **(parameters or {}),
        }
        name = dagster_stack_name(stack_name)
        missing = [key for key in DAGSTER_REQUIRED if key not in params]
        if missing and describe_stack(name, clients) is None:
            wanted = " ".join(f"--parameter {key}=…" for key in missing)
            raise StackError(f"the Dagster stack needs {', '.join(missing)}: pass {wanted}")
        template = read_template(DAGSTER_TEMPLATE_PATH)
        source = {"TemplateBody": DAGSTER_TEMPLATE_PATH.read_text()}
        _apply_change_set(
            name, source, params, template_parameters(template), clients, progress, poll_seconds, dry_run
        )
        return stack_outputs(describe_stack(name, clients) or {})


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
    dry_run: bool = False,
) -> None:
    cfn = clients("cloudformation")
    kind, previous = _change_set_type(stack_name, clients, progress, poll_seconds)
    params = _with_history_start(params, names, previous, stack_name if kind == "UPDATE" else None, clients)
    change_set = f"{stack_name}-{time.strftime('%Y%m%d%H%M%S')}"
    _say(progress, f"creating change set {change_set} ({kind})")
    try:
        created = cfn.create_change_set(
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
    # From here on the change set is named by its ARN: names are per second, so two deploys within
    # one second (a dry run right after a deploy) would otherwise name each other's change set.
    change_set = created["Id"]
    ready = _wait_change_set(stack_name, change_set, clients, progress, poll_seconds)
    if dry_run:
        _discard_change_set(stack_name, change_set, kind, clients, progress, ready)
        return
    if not ready:
        return
    _say(progress, "executing change set")
    cfn.execute_change_set(StackName=stack_name, ChangeSetName=change_set)
    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    _wait_stack(stack_name, waiter, clients, progress, poll_seconds)
    _say(progress, f"stack {stack_name} is {'created' if kind == 'CREATE' else 'updated'}")


def _discard_change_set(
    stack_name: str,
    change_set: str,
    kind: str,
    clients: ClientFactory,
    progress: Progress | None,
    ready: bool,
) -> None:
    """Dry run: delete the change set, and the empty REVIEW_IN_PROGRESS stack a CREATE made for it."""
    cfn = clients("cloudformation")
    if ready:  # a change set without changes was deleted by _wait_change_set already
        cfn.delete_change_set(StackName=stack_name, ChangeSetName=change_set)
    if kind == "CREATE":
        cfn.delete_stack(StackName=stack_name)
    _say(progress, f"dry run: change set {change_set} deleted, stack {stack_name} not changed")


def _change_set_type(
    stack_name: str, clients: ClientFactory, progress: Progress | None, poll_seconds: int
) -> tuple[str, set[str]]:
    """("CREATE" or "UPDATE", parameter names the existing stack has), clearing a dead stack first."""
    stack = describe_stack(stack_name, clients)
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        return "CREATE", set()
    status = stack["StackStatus"]
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


HISTORY_START = "RawHistoryStart"


def _with_history_start(
    params: dict[str, str], names: set[str], previous: set[str], existing: str | None, clients: ClientFactory
) -> dict[str, str]:
    """RawHistoryStart, unless given or kept: the day the stack was created (today for a new one),
    so raw_orders' projection starts where its data can (docs/design.md §9)."""
    if HISTORY_START not in names or HISTORY_START in params or HISTORY_START in previous:
        return params
    stack = describe_stack(existing, clients) if existing else None
    created = stack["CreationTime"] if stack else datetime.now(UTC)
    return {**params, HISTORY_START: f"{created.astimezone(UTC):%Y-%m-%d}"}


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
    detach: bool = False,
    progress: Progress | None = None,
    poll_seconds: int = 5,
    crawler_timeout: float = 900,
) -> bool:
    """Delete the Dagster stack `<stack_name>-dagster` if there is one (its database leaves a final
    snapshot), empty the data bucket and delete the stack (and, if asked, the artifacts bucket); wait.

    Before deleting, removes what would leave the stack in DELETE_FAILED: the operator policy still
    attached to identities outside the stack (CloudFormation cannot delete an attached managed
    policy: refused with the list, or detached with `detach`), and a running crawl (Glue's
    DeleteCrawler refuses a RUNNING crawler: stopped, then waited for). Returns False when there
    was no stack to delete.
    """
    with aws_errors(f"destroying stack {stack_name!r} in {region}"):
        clients = clients or make_clients(region)
        account = clients("sts").get_caller_identity()["Account"]
        # The Dagster stack first: its roles hold the pipeline's operator policy, and its tasks
        # write compute logs into the pipeline's bucket.
        dagster = describe_stack(dagster_stack_name(stack_name), clients)
        if dagster is not None:
            _delete_stack(dagster_stack_name(stack_name), dagster, clients, progress, poll_seconds)
        stack = describe_stack(stack_name, clients)
        if stack is None:
            _say(progress, f"no stack {stack_name} in {region}: nothing to delete")
        else:
            outputs = stack_outputs(stack)
            _release_operator_policy(outputs.get("OperatorPolicyArn"), clients, detach, progress)
            _stop_crawler(outputs.get("CrawlerName"), clients, progress, poll_seconds, crawler_timeout)
            _delete_stack(stack_name, stack, clients, progress, poll_seconds)
        if delete_artifacts:
            _delete_bucket(artifacts_bucket_name(account, region), clients, progress)
    return stack is not None


def _release_operator_policy(
    policy_arn: str | None, clients: ClientFactory, detach: bool, progress: Progress | None
) -> None:
    if not policy_arn:
        return
    iam = clients("iam")
    attached: list[tuple[str, str]] = []
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=policy_arn):
        attached += [("user", u["UserName"]) for u in page.get("PolicyUsers", [])]
        attached += [("group", g["GroupName"]) for g in page.get("PolicyGroups", [])]
        attached += [("role", r["RoleName"]) for r in page.get("PolicyRoles", [])]
    if not attached:
        return
    if not detach:
        names = ", ".join(f"{kind} {name}" for kind, name in attached)
        raise StackError(
            f"The operator policy {policy_arn} is attached to {names}; CloudFormation cannot delete an "
            "attached policy and the stack would end in DELETE_FAILED. Detach it (aws iam "
            "detach-user-policy / detach-role-policy / detach-group-policy), or run "
            "`sales-ops destroy --detach` to detach it from all of them."
        )
    detachers = {"user": ("detach_user_policy", "UserName"), "group": ("detach_group_policy", "GroupName"),
                 "role": ("detach_role_policy", "RoleName")}  # fmt: skip
    for kind, name in attached:
        method, key = detachers[kind]
        getattr(iam, method)(PolicyArn=policy_arn, **{key: name})
        _say(progress, f"detached the operator policy from {kind} {name}")


def _stop_crawler(
    name: str | None, clients: ClientFactory, progress: Progress | None, poll: int, timeout: float
) -> None:
    if not name:
        return
    glue = clients("glue")
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = glue.get_crawler(Name=name)["Crawler"]["State"]
        except glue.exceptions.EntityNotFoundException:
            return
        if state == "READY":
            return
        if state == "RUNNING":
            _say(progress, f"stopping crawler {name} (Glue cannot delete a running crawler)")
            stopped = (glue.exceptions.CrawlerNotRunningException, glue.exceptions.CrawlerStoppingException)
            with contextlib.suppress(*stopped):  # it ended or is stopping already
                glue.stop_crawler(Name=name)
        if time.monotonic() > deadline:
            raise StackError(
                f"crawler {name} is still {state} after {timeout:.0f}s; nothing was deleted: "
                "wait for it to stop, then destroy again"
            )
        time.sleep(poll)


def _delete_stack(
    stack_name: str, stack: dict[str, Any], clients: ClientFactory, progress: Progress | None, poll: int
) -> None:
    bucket = stack_outputs(stack).get("BucketName")
    for attempt in (1, 2):
        if bucket and _bucket_exists(bucket, clients):
            empty_bucket(bucket, clients, progress)
        _say(progress, f"deleting stack {stack_name}")
        clients("cloudformation").delete_stack(StackName=stack_name)
        try:
            _wait_stack(stack_name, "stack_delete_complete", clients, progress, poll)
            break
        except StackError as exc:
            # Retry only what a retry fixes: Firehose writing to the bucket until it is deleted
            # itself. Any other failure would fail the same way again: report it at once.
            if attempt == 2 or not any(
                n in str(exc) for n in ("BucketNotEmpty", "bucket you tried to delete is not empty")
            ):
                raise
            _say(progress, "the bucket got new objects while the stack was deleted: emptying it again")
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
