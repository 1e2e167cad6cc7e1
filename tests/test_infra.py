"""infra/template.yaml and sales_ops.deploy: lint, security scan, wiring, least privilege, and a deploy
of the part moto's CloudFormation can create (moto server on 127.0.0.1, dummy credentials)."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import boto3
import pytest

from sales_ops import deploy
from sales_ops.settings import (
    ATHENA_RESULTS_PREFIX,
    DEFAULT_SCAN_CUTOFF,
    ERROR_PREFIX,
    RAW_PREFIX,
    SCAN_CUTOFF_ENV,
    Settings,
    SettingsError,
    scan_cutoff_from_env,
    scan_cutoff_from_stack,
)
from tests import cfn_template
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return deploy.read_template(TEMPLATE)


def res(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def getatt(logical_id: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


# ----------------------------------------------------------------------------- lint and scan


def test_cfn_lint_finds_no_errors() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE)
    errors = [str(m) for m in matches if m.rule.id.startswith("E")]
    assert errors == []


SKIP_BLOCK = r"    Metadata:\n      checkov:\n        skip:\n(?:          .*\n)+"


def checkov_failures(*paths: Path) -> dict[Path, tuple[set[str], set[str]]]:
    """Per file, (failed check ids, skipped check ids) of one offline checkov run over `paths` (one
    process for all: checkov's start-up is most of a scan). The report is read from the file checkov
    writes, not its stdout: once, under load, the stdout JSON was broken at exactly 128 KiB."""
    with tempfile.TemporaryDirectory() as out_dir:
        command = [str(CHECKOV), *(a for p in paths for a in ("-f", str(p))), "--framework", "cloudformation",
                   "--compact", "--skip-download", "-o", "json", "--output-file-path", out_dir]  # fmt: skip
        env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}  # offline: no PyPI version check
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
        written = Path(out_dir) / "results_json.json"
        assert written.exists(), f"checkov wrote no report (exit {run.returncode}): {run.stderr[-2000:]}"
        report = json.loads(written.read_text())
    results = report.get("results", {}) if isinstance(report, dict) else {}
    assert not results.get("parsing_errors"), results["parsing_errors"]
    out: dict[Path, tuple[set[str], set[str]]] = {p.resolve(): (set(), set()) for p in paths}
    for kind, index in (("failed_checks", 0), ("skipped_checks", 1)):
        for check in results.get(kind, []):
            out[Path(check["file_abs_path"]).resolve()][index].add(check["check_id"])
    return out


def assert_checkov_passes_and_every_skip_is_needed(template: Path, tmp_path: Path) -> None:
    """The template passes checkov, and without its inline skips exactly the skipped checks fail:
    no skip is left over."""
    bare = tmp_path / "bare.yaml"
    bare.write_text(re.sub(SKIP_BLOCK, "", template.read_text()))
    found = checkov_failures(template, bare)
    failed, skipped = found[template.resolve()]
    assert failed == set()
    assert skipped, "no inline skip was read: the comparison below would prove nothing"
    assert found[bare.resolve()][0] == skipped


@pytest.mark.slow  # a checkov scan of two files: ~6 s
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov lives in .venv-tools/ (`make tools` creates it)")
def test_checkov_passes_and_every_skip_is_needed(tmp_path: Path) -> None:
    assert_checkov_passes_and_every_skip_is_needed(TEMPLATE, tmp_path)


def test_every_checkov_skip_gives_its_reason(template: dict[str, Any]) -> None:
    skips = [
        (lid, skip)
        for lid, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for lid, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (lid, skip)
        assert len(skip.get("comment", "")) > 40, f"{lid} skips {skip['id']} without a real reason"


# ----------------------------------------------------------------------------- wiring


def test_table_has_stream_pitr_encryption_on_demand(template: dict[str, Any]) -> None:
    table = res(template, "OrdersTable")
    assert table["TableName"] == ref("TableName")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "order_id", "KeyType": "HASH"}]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_pipe_reads_the_table_stream_and_writes_the_kinesis_stream(template: dict[str, Any]) -> None:
    pipe = res(template, "OrdersPipe")
    assert pipe["Source"] == getatt("OrdersTable", "StreamArn")
    assert pipe["Target"] == getatt("OrdersCdcStream", "Arn")
    assert pipe["RoleArn"] == getatt("PipeRole", "Arn")
    source = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["BatchSize"] == ref("PipeBatchSize")
    assert source["MaximumBatchingWindowInSeconds"] == ref("PipeBatchingWindowSeconds")
    assert source["MaximumRetryAttempts"] > 0
    assert source["DeadLetterConfig"] == {"Arn": getatt("PipeDeadLetterQueue", "Arn")}
    assert pipe["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"] == "$.dynamodb.Keys.order_id.S"


def test_kinesis_stream_is_encrypted(template: dict[str, Any]) -> None:
    kinesis = res(template, "OrdersCdcStream")
    assert kinesis["Name"] == ref("KinesisStreamName")
    assert kinesis["StreamEncryption"]["EncryptionType"] == "KMS"


def test_firehose_reads_the_pipe_target_and_calls_the_lambda(template: dict[str, Any]) -> None:
    firehose = res(template, "OrdersDeliveryStream")
    assert firehose["DeliveryStreamType"] == "KinesisStreamAsSource"
    source = firehose["KinesisStreamSourceConfiguration"]
    assert source["KinesisStreamARN"] == res(template, "OrdersPipe")["Target"]
    assert source["RoleARN"] == getatt("FirehoseRole", "Arn")
    s3 = firehose["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == getatt("DataBucket", "Arn")
    assert s3["RoleARN"] == getatt("FirehoseRole", "Arn")
    [processor] = s3["ProcessingConfiguration"]["Processors"]
    assert s3["ProcessingConfiguration"]["Enabled"] is True
    assert processor["Type"] == "Lambda"
    params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert params["LambdaArn"] == getatt("TransformFunction", "Arn")
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True
    hints = s3["BufferingHints"]
    assert hints == {"IntervalInSeconds": ref("FirehoseBufferSeconds"), "SizeInMBs": ref("FirehoseBufferMB")}
    assert s3["CompressionFormat"] == ref("RawCompression")
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True
    assert s3["CloudWatchLoggingOptions"]["LogGroupName"] == ref("FirehoseLogGroup")


def test_firehose_prefixes_follow_the_s3_layout(template: dict[str, Any]) -> None:
    s3 = res(template, "OrdersDeliveryStream")["ExtendedS3DestinationConfiguration"]
    assert s3["Prefix"] == RAW_PREFIX + "dt=!{partitionKeyFromLambda:dt}/hour=!{partitionKeyFromLambda:hour}/"
    assert s3["ErrorOutputPrefix"] == "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
    failed = s3["ErrorOutputPrefix"].replace("!{firehose:error-output-type}", "processing-failed")
    assert failed.startswith(ERROR_PREFIX)


def test_lambda_runs_the_project_handler_on_the_packaged_platform(template: dict[str, Any]) -> None:
    function = res(template, "TransformFunction")
    assert function["FunctionName"] == ref("FunctionName")
    assert function["Handler"] == "handler.handler"
    assert function["Runtime"] == f"python{deploy.LAMBDA_PYTHON}"
    assert function["Architectures"] == ["x86_64"] and deploy.LAMBDA_PLATFORM.endswith("x86_64")
    assert function["Code"] == {"S3Bucket": ref("LambdaCodeBucket"), "S3Key": ref("LambdaCodeKey")}
    assert function["MemorySize"] >= 128 and 0 < function["Timeout"] <= 300
    assert function["LoggingConfig"]["LogGroup"] == ref("TransformLogGroup")
    assert res(template, "TransformLogGroup")["RetentionInDays"] == ref("LogRetentionDays")
    if deploy.HANDLER_PATH.exists():
        tree = ast.parse(deploy.HANDLER_PATH.read_text())
        assert "handler" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_crawler_reads_the_raw_prefix_into_raw_orders(template: dict[str, Any]) -> None:
    crawler = res(template, "RawOrdersCrawler")
    assert crawler["Name"] == ref("CrawlerName")
    assert crawler["DatabaseName"] == ref("GlueDatabase")
    assert crawler["Role"] == getatt("CrawlerRole", "Arn")
    assert crawler["Classifiers"] == [ref("JsonClassifier")]
    assert "JsonClassifier" in res(template, "JsonClassifier")
    [target] = crawler["Targets"]["S3Targets"]
    assert target["Path"] == {"Fn::Sub": f"s3://${{DataBucket}}/{RAW_PREFIX}"}
    assert target["Exclusions"] == ["errors/**"]
    folder = RAW_PREFIX.rstrip("/").split("/")[-1]
    assert crawler["TablePrefix"] + folder == "raw_orders"
    assert "Schedule" not in crawler  # Dagster starts it
    grouping = json.loads(crawler["Configuration"])["Grouping"]
    assert grouping["TableGroupingPolicy"] == "CombineCompatibleSchemas"
    assert res(template, "GlueDatabase")["DatabaseInput"]["Name"] == ref("DatabaseName")


def test_raw_orders_table_is_projected_as_the_local_target_projects_it(template: dict[str, Any]) -> None:
    from sales_ops.catalog import glue

    table = res(template, "RawOrdersTable")
    assert table["DatabaseName"] == ref("GlueDatabase")
    spec = table["TableInput"]
    assert spec["Name"] == glue.RAW_TABLE
    # The same properties the code sets (one bucket name stands in for ${DataBucket}, a date for
    # the stack's RawHistoryStart).
    location = "s3://BUCKET/" + RAW_PREFIX
    expected = glue.raw_table_input(location, [], start="2026-05-04")
    params = {
        k: (
            v["Fn::Sub"]
            .replace("${DataBucket}", "BUCKET")
            .replace("${RawHistoryStart}", "2026-05-04")
            .replace("${!", "${")
            if isinstance(v, dict)
            else v
        )
        for k, v in spec["Parameters"].items()
    }
    assert params == expected["Parameters"]
    # Whole-lake queries enumerate the projected hours from RawHistoryStart on, not from 2020.
    assert spec["Parameters"]["projection.dt.range"] == {"Fn::Sub": "${RawHistoryStart},NOW+1DAYS"}
    assert template["Parameters"]["RawHistoryStart"]["Default"] == glue.RAW_HISTORY_START
    assert [(k["Name"], k["Type"]) for k in spec["PartitionKeys"]] == list(glue.RAW_PARTITION_KEYS)
    sd = spec["StorageDescriptor"]
    assert sd["Location"] == {"Fn::Sub": f"s3://${{DataBucket}}/{RAW_PREFIX}"}
    assert sd["SerdeInfo"]["SerializationLibrary"] == glue.JSON_SERDE
    # The contract's columns, as declared before the crawler has seen data.
    from sales_ops.schema import RAW_COLUMNS

    declared = [(c.name, glue.declared_raw_type(c.raw_types)) for c in RAW_COLUMNS]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == declared


def test_athena_workgroup_enforces_results_location_and_cutoff(template: dict[str, Any]) -> None:
    workgroup = res(template, "AthenaWorkGroup")
    assert workgroup["Name"] == ref("WorkGroupName")
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == ref("AthenaBytesScannedCutoff")
    result = config["ResultConfiguration"]
    assert result["OutputLocation"] == {"Fn::Sub": f"s3://${{DataBucket}}/{ATHENA_RESULTS_PREFIX}"}
    assert result["EncryptionConfiguration"]["EncryptionOption"]


def test_bucket_is_private_encrypted_tls_only_with_lifecycle(template: dict[str, Any]) -> None:
    bucket = res(template, "DataBucket")
    assert bucket["BucketName"] == {"Fn::Sub": "${BucketPrefix}-${AWS::AccountId}-${AWS::Region}"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-errors"]["Prefix"] == "errors/"
    assert rules["expire-athena-results"]["Prefix"] == ATHENA_RESULTS_PREFIX
    assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart-uploads"]
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert not any(r.get("Prefix", "").startswith(("raw/", "curated/")) for r in rules.values())
    [deny] = res(template, "DataBucketPolicy")["PolicyDocument"]["Statement"]
    assert res(template, "DataBucketPolicy")["Bucket"] == ref("DataBucket")
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_outputs_give_every_name_the_aws_target_reads(template: dict[str, Any]) -> None:
    name_fields = {f.name for f in fields(Settings) if f.type in ("str", str)}
    name_fields -= {"target", "region", "account", "stack_name", "raw_compression"}
    assert name_fields == set(deploy.SETTINGS_OUTPUTS)
    expected = {
        "BucketName": "DataBucket",
        "TableName": "OrdersTable",
        "KinesisStreamName": "OrdersCdcStream",
        "DeliveryStreamName": "OrdersDeliveryStream",
        "PipeName": "OrdersPipe",
        "TransformFunctionName": "TransformFunction",
        "GlueDatabaseName": "GlueDatabase",
        "CrawlerName": "RawOrdersCrawler",
        "AthenaWorkGroupName": "AthenaWorkGroup",
    }
    assert set(expected) == set(deploy.SETTINGS_OUTPUTS.values())
    for output, logical_id in expected.items():
        assert template["Outputs"][output]["Value"] == ref(logical_id), output


def test_default_names_match_the_local_target(template: dict[str, Any]) -> None:
    local = Settings()
    params = template["Parameters"]
    # Local raw/ is compressed as the stack's Firehose compresses it (issue 21), both choices allowed.
    assert params["RawCompression"]["Default"] == local.raw_compression == "GZIP"
    assert set(params["RawCompression"]["AllowedValues"]) == {"GZIP", "UNCOMPRESSED"}
    assert params["TableName"]["Default"] == local.table
    assert params["KinesisStreamName"]["Default"] == local.kinesis_stream
    assert params["DeliveryStreamName"]["Default"] == local.delivery_stream
    assert params["PipeName"]["Default"] == local.pipe
    assert params["FunctionName"]["Default"] == local.transform_function
    assert params["DatabaseName"]["Default"] == local.database
    assert params["CrawlerName"]["Default"] == local.crawler
    assert params["WorkGroupName"]["Default"] == local.workgroup


# ----------------------------------------------------------------------------- least privilege


def describe(resource: Any) -> str:
    """A short, comparable form of a policy resource: GetAtt -> 'Id.Attr', Sub -> its text."""
    if isinstance(resource, str):
        return resource
    if "Fn::GetAtt" in resource:
        return ".".join(resource["Fn::GetAtt"])
    if "Fn::Sub" in resource:
        text = resource["Fn::Sub"].replace("arn:${AWS::Partition}:", "")
        return text.replace(":${AWS::Region}:${AWS::AccountId}:", "::")
    if "Ref" in resource:
        return "!" + resource["Ref"]
    raise AssertionError(resource)


def grants(document: dict[str, Any]) -> dict[str, set[str]]:
    """action -> resources it is allowed on, over all Allow statements of a policy document."""
    out: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            out.setdefault(action, set()).update(describe(r) for r in as_list(statement["Resource"]))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_grants(template: dict[str, Any], logical_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for policy in res(template, logical_id)["Policies"]:
        for action, resources in grants(policy["PolicyDocument"]).items():
            out.setdefault(action, set()).update(resources)
    return out


LOGS = "logs::log-group:"
CRAWLER_CATALOG_READ = ["GetDatabase", "GetTable", "GetTables"]
CRAWLER_CATALOG_ACTIONS = [
    "CreateTable",
    "UpdateTable",
    "GetPartition",
    "GetPartitions",
    "BatchGetPartition",
    "CreatePartition",
    "BatchCreatePartition",
    "UpdatePartition",
    "BatchUpdatePartition",
]
EXPECTED_GRANTS = {
    "PipeRole": {
        "dynamodb:DescribeStream": {"OrdersTable.StreamArn"},
        "dynamodb:GetRecords": {"OrdersTable.StreamArn"},
        "dynamodb:GetShardIterator": {"OrdersTable.StreamArn"},
        "dynamodb:ListStreams": {"*"},
        "kinesis:PutRecord": {"OrdersCdcStream.Arn"},
        "kinesis:PutRecords": {"OrdersCdcStream.Arn"},
        "sqs:SendMessage": {"PipeDeadLetterQueue.Arn"},
        "logs:CreateLogStream": {LOGS + "${PipeLogGroup}:log-stream:*"},
        "logs:PutLogEvents": {LOGS + "${PipeLogGroup}:log-stream:*"},
    },
    "FirehoseRole": {
        **{
            f"kinesis:{a}": {"OrdersCdcStream.Arn"}
            for a in [
                "DescribeStream",
                "DescribeStreamSummary",
                "GetShardIterator",
                "GetRecords",
                "ListShards",
            ]
        },
        "lambda:InvokeFunction": {"TransformFunction.Arn", "${TransformFunction.Arn}:*"},
        "lambda:GetFunctionConfiguration": {"TransformFunction.Arn", "${TransformFunction.Arn}:*"},
        "s3:GetBucketLocation": {"DataBucket.Arn"},
        "s3:ListBucket": {"DataBucket.Arn"},
        "s3:ListBucketMultipartUploads": {"DataBucket.Arn"},
        **{
            f"s3:{a}": {"${DataBucket.Arn}/raw/orders/*", "${DataBucket.Arn}/errors/*"}
            for a in ("PutObject", "GetObject", "AbortMultipartUpload")
        },
        "logs:PutLogEvents": {LOGS + "${FirehoseLogGroup}:log-stream:DestinationDelivery"},
    },
    "TransformRole": {
        "logs:CreateLogStream": {LOGS + "${TransformLogGroup}:log-stream:*"},
        "logs:PutLogEvents": {LOGS + "${TransformLogGroup}:log-stream:*"},
    },
    "CrawlerRole": {
        "s3:ListBucket": {"DataBucket.Arn"},
        "s3:GetBucketLocation": {"DataBucket.Arn"},
        "s3:GetObject": {"${DataBucket.Arn}/raw/orders/*"},
        **{
            f"glue:{a}": {
                "glue::catalog",
                "glue::database/${DatabaseName}",
                "glue::table/${DatabaseName}/*",
            }
            for a in CRAWLER_CATALOG_READ
        },
        **{
            f"glue:{a}": {
                "glue::catalog",
                "glue::database/${DatabaseName}",
                "glue::table/${DatabaseName}/raw_*",
            }
            for a in CRAWLER_CATALOG_ACTIONS
        },
        **{
            f"logs:{a}": {LOGS + "/aws-glue/crawlers", LOGS + "/aws-glue/crawlers:log-stream:*"}
            for a in ("CreateLogGroup", "CreateLogStream", "PutLogEvents")
        },
    },
}
# The only Resource "*" grants, each with the reason AWS leaves no narrower choice.
STAR_RESOURCES = {
    ("PipeRole", "dynamodb:ListStreams"): "ListStreams has no resource-level permissions in IAM, "
    "and EventBridge Pipes lists it among the permissions a DynamoDB stream source needs",
}
TRUSTED_SERVICE = {
    "PipeRole": ("pipes.amazonaws.com", "OrdersPipe"),
    "FirehoseRole": ("firehose.amazonaws.com", "OrdersDeliveryStream"),
    "TransformRole": ("lambda.amazonaws.com", "TransformFunction"),
    "CrawlerRole": ("glue.amazonaws.com", "RawOrdersCrawler"),
}


def test_one_role_per_service_each_used_by_its_service_alone(template: dict[str, Any]) -> None:
    roles = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == set(TRUSTED_SERVICE)
    for role, (service, user) in TRUSTED_SERVICE.items():
        [trust] = res(template, role)["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": service} and trust["Action"] == "sts:AssumeRole"
        users = {lid for lid, r in template["Resources"].items() if role in cfn_template.references(r)} - {
            role
        }
        assert users == {user}, role


@pytest.mark.parametrize("role", sorted(EXPECTED_GRANTS))
def test_each_role_grants_only_what_its_service_uses(template: dict[str, Any], role: str) -> None:
    actual = role_grants(template, role)
    assert actual == EXPECTED_GRANTS[role]
    for action, resources in actual.items():
        assert "*" not in action, f"{role} grants a wildcard action {action}"
        if "*" in resources:
            assert (role, action) in STAR_RESOURCES, f"{role} grants {action} on every resource"


# The operator's Resource "*" grants: actions without resource-level permissions (checked against the
# service authorization reference in tests/test_iam.py).
OPERATOR_STAR = {"glue:GetCrawlerMetrics", "cloudwatch:GetMetricStatistics"}
# Outside the stack, and required by Athena on every query (template comment gives the AWS doc).
OPERATOR_DEFAULT_DB = {"glue::database/default"}


def test_operator_policy_is_scoped_to_the_stack(template: dict[str, Any]) -> None:
    document = res(template, "OperatorPolicy")["PolicyDocument"]
    actual = grants(document)
    stack_things = set(template["Resources"]) | set(template["Parameters"]) | {"AWS::StackId"}
    assert {a for a, r in actual.items() if "*" in r} == OPERATOR_STAR
    for action, resources in actual.items():
        assert "*" not in action, action
        if action in OPERATOR_STAR:
            assert resources == {"*"}, action
            continue
        for resource in resources - {"glue::catalog"} - OPERATOR_DEFAULT_DB:  # Glue: catalog is a parent
            names = re.findall(r"\$\{([^}.]+)", resource) or [resource.lstrip("!").split(".")[0]]
            named = set(names) & stack_things
            assert named, f"{action} on {resource} is not one of the stack's resources"
    assert actual["cloudformation:DescribeStacks"] == {"!AWS::StackId"}


# ----------------------------------------------------------------------------- packaging


@pytest.fixture()
def handler_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "handler.py"
    path.parent.mkdir()
    path.write_text("def handler(event, context):\n    return {'records': []}\n")
    return path


def test_package_is_reproducible_and_content_addressed(tmp_path: Path, handler_file: Path) -> None:
    first, digest = deploy.package_lambda(tmp_path / "a", handler_file, with_orjson=False)
    second, digest2 = deploy.package_lambda(tmp_path / "b", handler_file, with_orjson=False)
    assert first.read_bytes() == second.read_bytes() and digest == digest2
    assert digest == hashlib.sha256(first.read_bytes()).hexdigest() and digest[:16] in first.name
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["handler.py"]
        assert archive.getinfo("handler.py").date_time == deploy.ZIP_EPOCH
    handler_file.write_text(handler_file.read_text() + "# changed\n")
    _, changed = deploy.package_lambda(tmp_path / "c", handler_file, with_orjson=False)
    assert changed != digest


def test_package_bundles_the_orjson_wheel(tmp_path: Path, handler_file: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tags = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    wheel = wheels / f"orjson-{deploy.ORJSON_VERSION}-{tags}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:  # a stand-in wheel: no download in tests
        archive.writestr("orjson/__init__.py", "from .orjson import *\n")
        archive.writestr("orjson/orjson.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")
        archive.writestr(f"orjson-{deploy.ORJSON_VERSION}.dist-info/METADATA", "Name: orjson\n")
    path, _ = deploy.package_lambda(tmp_path / "build", handler_file, with_orjson=True, wheel_dir=wheels)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names == sorted(names) and "handler.py" in names
        so = archive.getinfo("orjson/orjson.cpython-311-x86_64-linux-gnu.so")
        assert so.external_attr >> 16 == 0o755
        assert archive.read("orjson/__init__.py").startswith(b"from .orjson")


def test_package_without_handler_says_so(tmp_path: Path) -> None:
    with pytest.raises(deploy.StackError, match="handler not found"):
        deploy.package_lambda(tmp_path, tmp_path / "missing.py", with_orjson=False)


# ----------------------------------------------------------------------------- no credentials


@pytest.fixture()
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credentials")
def test_deploy_without_credentials_gives_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="No AWS credentials found") as caught:
        deploy.deploy("sales-ops", REGION, build_dir=tmp_path / "build", with_orjson=False)
    assert "aws configure" in str(caught.value)
    assert not (tmp_path / "build").exists()  # failed before doing anything


@pytest.mark.usefixtures("no_credentials")
def test_destroy_and_aws_settings_without_credentials_give_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="No AWS credentials found"):
        deploy.destroy("sales-ops", REGION)
    with pytest.raises(SettingsError, match="No AWS credentials found"):
        Settings.from_env("aws", env={"AWS_REGION": REGION, "SALES_OPS_STATE_DIR": str(tmp_path)})


# ----------------------------------------------------------------------------- the emulator


def test_emulator_types_are_exactly_what_moto_models(template: dict[str, Any]) -> None:
    from moto.cloudformation.parsing import get_model_map

    modelled = set(get_model_map())
    assert modelled >= cfn_template.EMULATOR_TYPES
    for resource in template["Resources"].values():
        assert (resource["Type"] in cfn_template.EMULATOR_TYPES) == (resource["Type"] in modelled), resource[
            "Type"
        ]


# What moto 5.2's CloudFormation cannot create (no model), and what refers to it.
NOT_IN_MOTO = {
    "OrdersPipe",  # AWS::Pipes::Pipe
    "OrdersDeliveryStream",  # AWS::KinesisFirehose::DeliveryStream
    "FirehoseLogStream",  # AWS::Logs::LogStream
    "DataBucketPolicy",  # AWS::S3::BucketPolicy
    "GlueDatabase",  # AWS::Glue::Database
    "JsonClassifier",  # AWS::Glue::Classifier
    "RawOrdersCrawler",  # AWS::Glue::Crawler
    "RawOrdersTable",  # AWS::Glue::Table
    "AthenaWorkGroup",  # AWS::Athena::WorkGroup
    "AlarmTopicPolicy",  # AWS::SNS::TopicPolicy
    "AlarmEmailSubscription",  # AWS::SNS::Subscription
    "ProcessingFailedMetricFilter",  # AWS::Logs::MetricFilter
    "KinesisIteratorAgeAlarm",  # AWS::CloudWatch::Alarm, like the ones below
    "FirehoseFreshnessAlarm",
    "TransformErrorsAlarm",
    "TransformThrottlesAlarm",
    "PipeFailuresAlarm",
    "PipeThrottledAlarm",
    "KinesisWriteThrottledAlarm",
    "PipeDeadLettersAlarm",
    "ProcessingFailedAlarm",
}


def test_emulator_subset_drops_only_what_moto_cannot_create(template: dict[str, Any]) -> None:
    subset, dropped = cfn_template.emulator_subset(template)
    assert set(dropped) == NOT_IN_MOTO
    assert set(subset["Resources"]) == set(template["Resources"]) - NOT_IN_MOTO
    for output in subset["Outputs"].values():
        assert not cfn_template.references(output["Value"]) & NOT_IN_MOTO
    # Names of what is not created are still output, so the outputs stay complete.
    assert subset["Outputs"]["DeliveryStreamName"]["Value"] == ref("DeliveryStreamName")
    assert subset["Outputs"]["GlueDatabaseName"]["Value"] == ref("DatabaseName")
    assert set(deploy.SETTINGS_OUTPUTS.values()) <= set(subset["Outputs"])


@pytest.fixture(scope="module")
def moto_clients() -> Iterator[deploy.ClientFactory]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    try:
        yield deploy.make_clients(REGION, session=session, endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployed(
    moto_clients: deploy.ClientFactory, template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The emulator subset deployed through `deploy.deploy` (change set, waiters, artifacts)."""
    subset, _ = cfn_template.emulator_subset(template)
    build = tmp_path_factory.mktemp("build")
    said: list[str] = []
    outputs = deploy.deploy(
        "sales-ops", REGION, clients=moto_clients, template=subset, with_orjson=False,
        build_dir=build, progress=said.append, poll_seconds=1,
    )  # fmt: skip
    # moto 5.2.5 evaluates Outputs on CreateStack/UpdateStack but not when a change set is executed
    # (they stay empty); an UpdateStack with the same template makes it compute them.
    if not outputs:
        moto_clients("cloudformation").update_stack(
            StackName="sales-ops", UsePreviousTemplate=True, Capabilities=deploy.CAPABILITIES
        )
    return {"said": said, "build": build, "subset": subset}


def test_deploy_creates_the_stack_through_a_change_set(deployed: dict[str, Any]) -> None:
    said = "\n".join(deployed["said"])
    assert "creating change set" in said and "(CREATE)" in said and "stack sales-ops is created" in said
    assert "Add      OrdersTable" in said


@pytest.mark.usefixtures("deployed")
def test_a_new_stack_projects_raw_orders_from_its_creation_day(moto_clients: deploy.ClientFactory) -> None:
    from datetime import UTC, datetime

    (stack,) = moto_clients("cloudformation").describe_stacks(StackName="sales-ops")["Stacks"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["RawHistoryStart"] == f"{datetime.now(UTC):%Y-%m-%d}"


def test_kinesis_is_provisioned_with_the_shard_count_or_on_demand(template: dict[str, Any]) -> None:
    stream = res(template, "OrdersCdcStream")
    assert stream["StreamModeDetails"] == {"StreamMode": ref("KinesisStreamMode")}
    assert stream["ShardCount"] == {
        "Fn::If": ["KinesisOnDemand", ref("AWS::NoValue"), ref("KinesisShardCount")]
    }
    assert template["Conditions"]["KinesisOnDemand"] == {
        "Fn::Equals": [ref("KinesisStreamMode"), "ON_DEMAND"]
    }
    assert template["Parameters"]["KinesisStreamMode"]["AllowedValues"] == ["PROVISIONED", "ON_DEMAND"]


def test_throttling_of_the_pipe_and_of_kinesis_writes_is_alarmed(template: dict[str, Any]) -> None:
    """1,000 changes/s needs more than one shard (issue 21): a shortfall must page someone."""
    pipe, kinesis = res(template, "PipeThrottledAlarm"), res(template, "KinesisWriteThrottledAlarm")
    assert (pipe["Namespace"], pipe["MetricName"]) == ("AWS/EventBridge/Pipes", "ExecutionThrottled")
    assert pipe["Dimensions"] == [{"Name": "PipeName", "Value": ref("OrdersPipe")}]
    assert (kinesis["Namespace"], kinesis["MetricName"]) == (
        "AWS/Kinesis",
        "WriteProvisionedThroughputExceeded",
    )
    assert kinesis["Dimensions"] == [{"Name": "StreamName", "Value": ref("OrdersCdcStream")}]
    for alarm in (pipe, kinesis):
        assert alarm["AlarmActions"] == [ref("AlarmTopic")] and alarm["TreatMissingData"] == "notBreaching"


def test_the_operator_may_publish_the_alerts_to_the_alarm_topic_only(template: dict[str, Any]) -> None:
    statements = res(template, "OperatorPolicy")["PolicyDocument"]["Statement"]
    sns = [s for s in statements if any(str(a).startswith("sns:") for a in _as_list(s["Action"]))]
    assert sns == [
        {"Sid": "Alerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": ref("AlarmTopic")}
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.usefixtures("deployed")
def test_deployed_table_kinesis_bucket_queue_and_logs(moto_clients: deploy.ClientFactory) -> None:
    table = moto_clients("dynamodb").describe_table(TableName="orders")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "order_id", "KeyType": "HASH"}]
    # moto's CloudFormation ignores SSESpecification (CFN spells it SSEEnabled, its API Enabled) and
    # PointInTimeRecoverySpecification; the wiring tests above check those in the template.
    kinesis = moto_clients("kinesis")
    summary = kinesis.describe_stream_summary(StreamName="orders-cdc")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 1 and summary["RetentionPeriodHours"] == 24
    bucket = f"sales-ops-{ACCOUNT}-{REGION}"
    encryption = moto_clients("s3").get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert moto_clients("sqs").get_queue_url(QueueName="sales-ops-pipe-dlq")["QueueUrl"]
    groups = moto_clients("logs").describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
        "/aws/lambda/orders-firehose-transform": 14,
        "/aws/kinesisfirehose/orders-raw": 14,
        "/aws/vendedlogs/pipes/orders-cdc-pipe": 14,
    }


def test_deployed_lambda_runs_the_uploaded_package(
    moto_clients: deploy.ClientFactory, deployed: dict[str, Any]
) -> None:
    function = moto_clients("lambda").get_function(FunctionName="orders-firehose-transform")["Configuration"]
    assert function["Runtime"] == "python3.11" and function["Handler"] == "handler.handler"
    assert function["MemorySize"] == 256 and function["Timeout"] == 60
    [package] = deployed["build"].glob("firehose_transform-*.zip")
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    artifacts = deploy.artifacts_bucket_name(ACCOUNT, REGION)
    keys = [o["Key"] for o in moto_clients("s3").list_objects_v2(Bucket=artifacts)["Contents"]]
    assert keys == [f"lambda/orders-firehose-transform-{package.name.split('-')[1].split('.')[0]}.zip"]
    block = moto_clients("s3").get_public_access_block(Bucket=artifacts)["PublicAccessBlockConfiguration"]
    assert set(block.values()) == {True}


@pytest.mark.usefixtures("deployed")
def test_deployed_roles_trust_their_service(moto_clients: deploy.ClientFactory) -> None:
    iam = moto_clients("iam")
    services = set()
    for role in iam.list_roles()["Roles"]:
        if role["RoleName"].startswith("sales-ops-"):
            [statement] = role["AssumeRolePolicyDocument"]["Statement"]
            services.add(statement["Principal"]["Service"])
    assert services == {service for service, _ in TRUSTED_SERVICE.values()}


@pytest.mark.usefixtures("deployed")
def test_settings_from_stack_reads_the_outputs(moto_clients: deploy.ClientFactory, tmp_path: Path) -> None:
    settings = deploy.settings_from_stack("sales-ops", REGION, tmp_path, clients=moto_clients)
    assert settings.target == "aws" and settings.endpoint_url is None and not settings.is_local
    assert settings.account == ACCOUNT and settings.region == REGION
    assert settings.bucket == f"sales-ops-{ACCOUNT}-{REGION}"
    local = Settings()  # the default names are the same on both targets
    for name in ("table", "kinesis_stream", "delivery_stream", "pipe", "transform_function"):
        assert getattr(settings, name) == getattr(local, name), name
    for name in ("database", "crawler", "workgroup"):
        assert getattr(settings, name) == getattr(local, name), name
    assert settings.state_dir == tmp_path and settings.stack_name == "sales-ops"
    # The per-query scan cutoff compaction plans its passes by is the stack's, as deployed.
    default = deploy.read_template(TEMPLATE)["Parameters"]["AthenaBytesScannedCutoff"]["Default"]
    assert settings.scan_cutoff_bytes == int(default)


def test_the_scan_cutoff_comes_from_the_stack_parameter_or_the_environment() -> None:
    described = {"Parameters": [{"ParameterKey": "AthenaBytesScannedCutoff", "ParameterValue": "20971520"}]}
    assert scan_cutoff_from_stack(described) == 20971520
    assert scan_cutoff_from_stack({"Parameters": []}) == DEFAULT_SCAN_CUTOFF  # an older stack
    assert scan_cutoff_from_env({}) == DEFAULT_SCAN_CUTOFF
    assert scan_cutoff_from_env({SCAN_CUTOFF_ENV: "20971520"}) == 20971520
    assert Settings(scan_cutoff_bytes=20971520).to_env()[SCAN_CUTOFF_ENV] == "20971520"
    for bad in ("1e9", "-5", "1000", "lots"):
        with pytest.raises(SettingsError, match=SCAN_CUTOFF_ENV):
            scan_cutoff_from_env({SCAN_CUTOFF_ENV: bad})


def test_settings_from_a_missing_stack_says_how_to_fix(
    moto_clients: deploy.ClientFactory, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=r"No CloudFormation stack 'nope'.*sales-ops deploy"):
        deploy.settings_from_stack("nope", REGION, tmp_path, clients=moto_clients)


def test_redeploy_without_changes_is_a_no_op_and_code_changes_update(
    moto_clients: deploy.ClientFactory, deployed: dict[str, Any], tmp_path: Path, handler_file: Path
) -> None:
    said: list[str] = []
    deploy.deploy(
        "sales-ops", REGION, clients=moto_clients, template=deployed["subset"], with_orjson=False,
        build_dir=deployed["build"], progress=said.append, poll_seconds=1,
    )  # fmt: skip
    assert "no changes: the stack is up to date" in said
    said.clear()
    deploy.deploy(
        "sales-ops", REGION, clients=moto_clients, template=deployed["subset"], with_orjson=False,
        build_dir=tmp_path, handler=handler_file, progress=said.append, poll_seconds=1,
    )  # fmt: skip
    assert "(UPDATE)" in "\n".join(said) and "stack sales-ops is updated" in said
    [package] = tmp_path.glob("firehose_transform-*.zip")
    function = moto_clients("lambda").get_function(FunctionName="orders-firehose-transform")["Configuration"]
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    described = deploy.describe_stack("sales-ops", moto_clients) or {}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert parameters["LambdaCodeKey"].endswith(package.name.split("-")[1])


def test_deploy_dry_run_prints_the_changes_and_changes_nothing(
    moto_clients: deploy.ClientFactory, deployed: dict[str, Any]
) -> None:
    cfn = moto_clients("cloudformation")
    before = deploy.describe_stack("sales-ops", moto_clients) or {}
    said: list[str] = []
    deploy.deploy(
        "sales-ops", REGION, clients=moto_clients, template=deployed["subset"], with_orjson=False,
        build_dir=deployed["build"], progress=said.append, poll_seconds=1, dry_run=True,
        parameters={"LogRetentionDays": "30"},
    )  # fmt: skip
    text = "\n".join(said)
    assert "(UPDATE)" in text and "dry run: change set" in text and "not changed" in text
    assert "executing change set" not in text
    after = deploy.describe_stack("sales-ops", moto_clients) or {}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in after["Parameters"]}
    assert parameters["LogRetentionDays"] == "14" and after["StackStatus"] == before["StackStatus"]
    summaries = cfn.list_change_sets(StackName="sales-ops")["Summaries"]
    assert [c for c in summaries if c["ExecutionStatus"] == "AVAILABLE"] == []  # executed ones stay listed
    # A dry run of a stack that does not exist yet leaves no stack behind.
    said.clear()
    deploy.deploy(
        "sales-ops-dry", REGION, clients=moto_clients, template=deployed["subset"], with_orjson=False,
        build_dir=deployed["build"], progress=said.append, poll_seconds=1, dry_run=True,
        parameters={"BucketPrefix": "dry-run"},
    )  # fmt: skip
    assert "(CREATE)" in "\n".join(said) and "Add      OrdersTable" in "\n".join(said)
    stack = deploy.describe_stack("sales-ops-dry", moto_clients)
    assert stack is None or stack["StackStatus"] == "DELETE_COMPLETE"


def test_destroy_refuses_an_attached_policy_stops_the_crawler_empties_the_bucket_and_deletes(
    moto_clients: deploy.ClientFactory, deployed: dict[str, Any]
) -> None:
    """Defect 13 first (an attached operator policy, a running crawl: each would leave the stack in
    DELETE_FAILED), then the whole destroy."""
    iam, glue = moto_clients("iam"), moto_clients("glue")
    outputs = deploy.stack_outputs(deploy.describe_stack("sales-ops", moto_clients) or {})
    policy = outputs["OperatorPolicyArn"]
    iam.create_user(UserName="operator")
    iam.attach_user_policy(UserName="operator", PolicyArn=policy)
    with pytest.raises(deploy.StackError, match=r"attached to user operator.*--detach"):
        deploy.destroy("sales-ops", REGION, clients=moto_clients, poll_seconds=1)
    assert deploy.describe_stack("sales-ops", moto_clients) is not None  # nothing was deleted
    # The crawler (Glue is not in moto's CloudFormation: created by hand under the output's name).
    glue.create_crawler(
        Name=outputs["CrawlerName"], Role="arn:aws:iam::123456789012:role/x", DatabaseName="sales_ops",
        Targets={"S3Targets": [{"Path": "s3://x/raw/orders/"}]},
    )  # fmt: skip
    glue.start_crawler(Name=outputs["CrawlerName"])
    said: list[str] = []
    # moto's crawl never leaves STOPPING: destroy stops it, waits, and deletes nothing meanwhile.
    with pytest.raises(deploy.StackError, match=r"still STOPPING.*nothing was deleted"):
        deploy.destroy(
            "sales-ops", REGION, clients=moto_clients, detach=True, progress=said.append, poll_seconds=1,
            crawler_timeout=2,
        )  # fmt: skip
    assert any(line.startswith("stopping crawler") for line in said)
    assert "detached the operator policy from user operator" in said
    assert deploy.describe_stack("sales-ops", moto_clients) is not None
    glue.delete_crawler(Name=outputs["CrawlerName"])  # as Glue would once the crawl has stopped

    s3 = moto_clients("s3")
    bucket = f"sales-ops-{ACCOUNT}-{REGION}"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        s3.put_object(Bucket=bucket, Key="raw/orders/dt=2026-01-01/hour=00/x.json", Body=b"{}\n" * n)
    s3.delete_object(Bucket=bucket, Key="raw/orders/dt=2026-01-01/hour=00/x.json")  # a delete marker
    said: list[str] = []
    assert deploy.destroy(
        "sales-ops", REGION, clients=moto_clients, detach=True, progress=said.append, poll_seconds=1
    )
    assert iam.list_attached_user_policies(UserName="operator")["AttachedPolicies"] == []
    assert "emptied s3://" + bucket + " (4 object versions)" in said
    assert deploy.describe_stack("sales-ops", moto_clients) is None
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert not deploy.destroy("sales-ops", REGION, clients=moto_clients, progress=said.append)


def test_default_region_prefers_the_environment() -> None:
    assert (
        deploy.default_region({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}) == "eu-west-1"
    )
    assert deploy.default_region({"AWS_DEFAULT_REGION": "us-west-2"}) == "us-west-2"


# ----------------------------------------------------------------------------- service limits
# The limits AWS documents, and the template's parameters and settings that must stay inside them:
# - a Pipe with a Kinesis target takes at most 500 records a batch (PutRecords' limit);
#   a batching window is at most 300 s (EventBridge Pipes batching and concurrency);
# - Firehose with dynamic partitioning: buffer 60-900 s (no zero buffering), 64-128 MB
#   (Firehose buffering hints); its Lambda processor buffers 0.2-3 MB and 60-900 s, and a Lambda
#   invoked synchronously takes at most 6 MB (Lambda quotas);
# - Firehose invokes the processor with a timeout of at most 5 minutes (Firehose data transformation);
# - a Kinesis record is at most 1 MiB; a DynamoDB item at most 400 KB, so a stream record with both
#   images (NEW_AND_OLD_IMAGES, 2 x 400 KB) stays under it;
# - Athena's BytesScannedCutoffPerQuery is at least 10 MB.
LIMITS = {
    "PipeBatchSize": (1, 500),
    "PipeBatchingWindowSeconds": (0, 300),
    "FirehoseBufferSeconds": (60, 900),
    "FirehoseBufferMB": (64, 128),
    "AthenaBytesScannedCutoff": (10 * 1024 * 1024, None),
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_parameter_ranges_stay_within_aws_limits(template: dict[str, Any], name: str) -> None:
    low, high = LIMITS[name]
    param = template["Parameters"][name]
    assert param["MinValue"] >= low, f"{name} allows {param['MinValue']}, AWS refuses below {low}"
    if high is not None:
        assert "MaxValue" in param and param["MaxValue"] <= high, f"{name} allows more than {high}"
    assert param["MinValue"] <= param["Default"] <= param.get("MaxValue", param["Default"])


def test_every_parameter_default_is_allowed(template: dict[str, Any]) -> None:
    for name, param in template["Parameters"].items():
        if "Default" not in param:
            continue
        default = param["Default"]
        if "AllowedValues" in param:
            assert default in param["AllowedValues"], name
        if "AllowedPattern" in param:
            assert re.fullmatch(param["AllowedPattern"], str(default)), name
        if "MinValue" in param:
            assert param["MinValue"] <= default <= param.get("MaxValue", default), name
    email = template["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert re.fullmatch(email, "ops@example.com") and not re.fullmatch(email, "not-an-address")


def test_cross_service_limits(template: dict[str, Any]) -> None:
    pipe = res(template, "OrdersPipe")
    assert pipe["Target"] == getatt("OrdersCdcStream", "Arn")  # the 500-record limit above applies
    assert pipe["SourceParameters"]["DynamoDBStreamParameters"]["BatchSize"] == ref("PipeBatchSize")
    s3 = res(template, "OrdersDeliveryStream")["ExtendedS3DestinationConfiguration"]
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True  # the 60 s / 64 MB minimums apply
    [processor] = s3["ProcessingConfiguration"]["Processors"]
    params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert 0.2 <= float(params["BufferSizeInMBs"]) <= 3  # under Lambda's 6 MB synchronous payload
    assert 60 <= int(params["BufferIntervalInSeconds"]) <= 900
    assert res(template, "TransformFunction")["Timeout"] <= 300
    assert res(template, "OrdersTable")["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    # The processor's answer carries each record's output base64-encoded (4/3 of the bytes) and must
    # stay under Lambda's 6 MB response payload too.
    assert float(params["BufferSizeInMBs"]) * 4 / 3 < 6
