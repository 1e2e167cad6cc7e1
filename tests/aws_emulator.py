"""The aws target's Dagster resources, pointed at the emulator.

On aws, `PipelineResource` reads the deployed stack's Outputs (`Settings.from_env` →
`settings_from_stack`) and dagster-aws's `S3Resource` uses the default credential chain, so nothing
in the resources can name an endpoint. boto3's `AWS_ENDPOINT_URL` can: with it set, every client of
the process, those two included, talks to the emulator. The stack whose Outputs name a test's own
bucket, database and table lives in a plain moto server of its own (`AWS_ENDPOINT_URL_CLOUDFORMATION`):
the emulator refuses CloudFormation's form-encoded POSTs, as a browser guard. From there the aws
code path runs unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from dagster_aws.s3 import S3Resource

from sales_ops.defs.resources import PipelineResource, build_resources
from sales_ops.settings import ALARM_TOPIC_OUTPUT, SETTINGS_OUTPUTS, Settings
from tests.harness import free_port


@contextmanager
def cloudformation_server() -> Iterator[str]:
    """A moto server on loopback for CloudFormation alone; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_resources_on_emulator(
    space: Settings,
    cloudformation: str,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    alarm_topic_arn: str | None = None,
    **names: str,
) -> dict[str, Any]:
    """`build_resources()` for target aws, reading a stack on the emulator that names `space`'s
    bucket and database (and `names`: table, crawler, workgroup, … overrides), and the alarm
    topic in its `AlarmTopicArn` output when one is given."""
    stack_name = f"stack-{uuid.uuid4().hex[:8]}"
    values = {
        "bucket": space.bucket, "table": space.table, "kinesis_stream": space.kinesis_stream,
        "delivery_stream": space.delivery_stream, "pipe": space.pipe,
        "transform_function": space.transform_function, "database": space.database,
        "crawler": space.crawler, "workgroup": space.workgroup, **names,
    }  # fmt: skip
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},  # a stack needs one resource
        "Outputs": {output: {"Value": values[name]} for name, output in SETTINGS_OUTPUTS.items()},
    }
    if alarm_topic_arn:
        template["Outputs"][ALARM_TOPIC_OUTPUT] = {"Value": alarm_topic_arn}
    env = {
        "AWS_ENDPOINT_URL": space.endpoint_url or "", "AWS_ENDPOINT_URL_CLOUDFORMATION": cloudformation,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": space.region, "SALES_OPS_TARGET": "aws",
        "SALES_OPS_STACK": stack_name, "SALES_OPS_STATE_DIR": str(state_dir),
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("SALES_OPS_ENDPOINT", raising=False)
    cfn = boto3.session.Session(region_name=space.region).client("cloudformation")
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    resources = build_resources(PipelineResource())
    assert resources["pipeline"].settings().bucket == space.bucket  # read from the stack's outputs
    assert resources["pipeline"].settings().alarm_topic_arn == alarm_topic_arn
    return resources


def hook_s3_resource_clients(monkeypatch: pytest.MonkeyPatch, register: Callable[[Any], None]) -> None:
    """Call `register(client)` on each client the S3 resource hands out (it builds a new one each time)."""
    get_client = S3Resource.get_client

    def hooked(self: S3Resource) -> Any:
        client = get_client(self)
        register(client)
        return client

    monkeypatch.setattr(S3Resource, "get_client", hooked)
