"""IAM coverage of the Dagster half (issue 16, "exercise every aws-target code path"): the code
location's definitions with the aws target's resources (tests/aws_emulator.py: the stack's Outputs
and AWS_ENDPOINT_URL point them at the emulator), every AWS call recorded with botocore hooks, and
each evaluated against the template's OperatorPolicy, as tests/test_iam.py does for the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dagster as dg
from sales_ops import deploy
from sales_ops.catalog import glue
from sales_ops.definitions import build_definitions
from sales_ops.defs.operations.sensors import run_failure_recorder
from sales_ops.schema import RAW_COLUMNS
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings
from tests import iam_policy
from tests.aws_emulator import aws_resources_on_emulator, cloudformation_server, hook_s3_resource_clients
from tests.iam_policy import Recorder, Stack
from tests.test_iam import TEMPLATE, denied, operator_statements

pytestmark = pytest.mark.slow

# The sensors whose ticks call AWS (run_failure_recorder reacts to Dagster runs; the automation
# sensor evaluates conditions in the instance).
SENSORS = (
    "raw_objects_sensor",
    "processing_failed_sensor",
    "reconciliation_failures_sensor",
    "alerts_sensor",
)


def test_every_aws_call_of_the_dagster_definitions_on_aws_is_allowed(
    space: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    template = deploy.read_template(TEMPLATE)
    table, crawler, workgroup = (
        f"orders-{space.database}",
        f"crawler-{space.database}",
        f"wg-{space.database}",
    )
    space.client("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
    )  # fmt: skip
    space.client("glue").create_crawler(
        Name=crawler, Role="arn:aws:iam::123456789012:role/x", DatabaseName=space.database,
        Targets={"S3Targets": [{"Path": space.s3_uri(RAW_PREFIX)}]},
    )  # fmt: skip
    space.client("athena").create_work_group(Name=workgroup, Configuration={})
    columns = [(c.name, sorted(c.raw_types)[0]) for c in RAW_COLUMNS]
    partitions = list(glue.RAW_PARTITION_KEYS)
    glue.put_table(space, glue.json_table_input("raw_orders", columns, space.s3_uri(RAW_PREFIX), partitions))
    s3 = space.client("s3")
    s3.put_object(Bucket=space.bucket, Key=f"{RAW_PREFIX}dt=2026-01-02/hour=03/o-1.json", Body=b'{"a": 1}\n')
    s3.put_object(Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/01/02/03/e-1", Body=b"not json")

    names = {
        "DatabaseName": space.database,
        "TableName": table,
        "CrawlerName": crawler,
        "WorkGroupName": workgroup,
    }
    stack = Stack(iam_policy.template_params(template, **names), bucket_name=space.bucket)
    recorder = Recorder(stack, workgroup=workgroup)
    # The stack's alarm topic (AlarmTopic's name for this stack), where the Dagster alerts publish.
    topic = space.client("sns").create_topic(Name=f"{stack.stack_name}-alarms")["TopicArn"]
    assert topic == stack.arn("sns", f"{stack.stack_name}-alarms")
    with cloudformation_server() as cloudformation:
        resources = aws_resources_on_emulator(
            space, cloudformation, monkeypatch, tmp_path, alarm_topic_arn=topic,
            table=table, crawler=crawler, workgroup=workgroup,
        )  # fmt: skip
        settings = resources["pipeline"].settings()
        assert settings.target == "aws" and settings.endpoint_url is None  # the aws code path, unchanged
        recorder.attach(settings._session)  # before any of its clients exists
        hook_s3_resource_clients(
            monkeypatch,
            lambda client: client.meta.events.register("before-parameter-build", recorder._before_call),
        )
        # Loaded inside an instance, as the code server does: loading reads the current instance's
        # defs state storage, and outside one an earlier test's disposed instance may be current.
        with dg.instance_for_test():
            defs = build_definitions(resources)
        failures = run_the_definitions(defs, resources)

    operations = {c.operation for c in recorder.calls}
    # It cannot pass by recording nothing: each area's calls were made.
    assert {
        "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "cloudwatch:GetMetricStatistics",
        "s3:ListObjectsV2", "s3:GetObject", "glue:GetTable", "glue:GetPartitions",
        "athena:StartQueryExecution", "sns:Publish",
    } <= operations, (sorted(operations), failures)  # fmt: skip
    refused = sorted(
        {
            (c.operation, c.action, r)
            for c in denied(operator_statements(template, stack), recorder.calls)
            for r in c.resources
        }
    )
    assert refused == [], "\n".join(map(str, refused)) + f"\n(steps that stopped early: {failures})"


def run_the_definitions(defs: dg.Definitions, resources: dict[str, Any]) -> dict[str, str]:
    """The load, the observable sources, every asset and check, then one tick of each AWS sensor.
    Steps may stop early (the emulator's Athena returns no rows); what failed is returned."""
    failures: dict[str, str] = {}
    load_config = {"ops": {"order_load": {"config": {"orders": 3, "rate": 0.0}}}}
    with dg.instance_for_test() as instance:
        # Resolved inside the instance: building the repository reads the current instance's defs
        # state storage, and outside one an earlier test's (disposed) instance may still be current.
        job = defs.resolve_implicit_global_asset_job_def()
        keys = {k.to_user_string(): k for k in defs.resolve_asset_graph().get_all_asset_keys()}
        for label, selection, config in (
            ("load", ["order_load"], load_config),
            ("observe", ["dynamodb_orders", "raw_orders_files"], None),
            # Not raw_orders_table: it waits for the crawl, and the emulator's crawler never leaves
            # RUNNING; test_iam.py runs the crawler's calls (StartCrawler, GetCrawlerMetrics).
            # The rollups wait for orders_latest's blocking checks, which fail without rows; run on
            # their own, each would fail the same way after its writer retries (70 s of backoff):
            # test_iam.py runs build_rollups' calls instead.
            ("refresh", ["orders_latest", "sales_by_product_hourly"], None),
        ):
            result = job.execute_in_process(
                instance=instance, asset_selection=[keys[k] for k in selection], run_config=config,
                raise_on_error=False,
            )  # fmt: skip
            failures.update(
                {f"{label}:{e.step_key}": e.message for e in result.all_events if e.is_step_failure}
            )
        # A failed run's alert goes to the alarm topic (SNS Publish), as the run-failure sensor sends it.
        failed = next(r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE)
        failure = next(
            e.dagster_event
            for e in instance.all_logs(failed.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_recorder", dagster_event=failure, dagster_instance=instance,
            dagster_run=failed, resources={"pipeline": resources["pipeline"]},
        ).for_run_failure()  # fmt: skip
        run_failure_recorder(context)
        repository = defs.get_repository_def()
        for name in SENSORS:
            sensor = repository.get_sensor_def(name)
            with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
                try:
                    sensor.evaluate_tick(context)
                except Exception as exc:
                    failures[f"sensor:{name}"] = f"{type(exc).__name__}: {exc}"
    return failures
