"""Create the pipeline's resources in the emulator, idempotently (safe on every `local up`).

The Pipe and Firehose are created through their real control-plane APIs, which moto stores but does
not run: the stand-ins read their batch sizes, buffering hints and prefixes back from these
definitions, exactly as the services would.
"""

from __future__ import annotations

from sales_ops.curated.live import put_live_view
from sales_ops.settings import ERROR_PREFIX, RAW_PREFIX, Settings

KINESIS_SHARDS = 2
# Small buffers so that locally data is fresh within seconds (AWS allows 1 MiB / 0 s and up).
LOCAL_BUFFER_MB = 1
LOCAL_BUFFER_SECONDS = 1
PIPE_BATCH_SIZE = 500  # Kinesis PutRecords takes at most 500 records per call.

FIREHOSE_PREFIX = RAW_PREFIX + "dt=!{partitionKeyFromLambda:dt}/hour=!{partitionKeyFromLambda:hour}/"
FIREHOSE_ERROR_PREFIX = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
assert FIREHOSE_ERROR_PREFIX.replace("!{firehose:error-output-type}", "processing-failed").startswith(
    ERROR_PREFIX
)


def _role(settings: Settings, name: str) -> str:
    return f"arn:aws:iam::{settings.account}:role/{name}"


def lambda_arn(settings: Settings) -> str:
    return f"arn:aws:lambda:{settings.region}:{settings.account}:function:{settings.transform_function}"


def provision(settings: Settings) -> dict[str, str]:
    """Ensure bucket, table+stream, Kinesis stream, Firehose, Pipe, Glue database and orders_live exist."""
    _bucket(settings)
    stream_arn = _table(settings)
    kinesis_arn = _kinesis(settings)
    _firehose(settings, kinesis_arn)
    _pipe(settings, stream_arn, kinesis_arn)
    _glue_database(settings)
    put_live_view(settings)  # raw_orders (projected), orders_latest and orders_live, before any crawl
    return {"table_stream_arn": stream_arn, "kinesis_stream_arn": kinesis_arn}


def _bucket(settings: Settings) -> None:
    s3 = settings.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings.bucket not in existing:
        s3.create_bucket(Bucket=settings.bucket)


STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _table(settings: Settings) -> str:
    """The table with its stream and point-in-time recovery (as infra/template.yaml has them).

    An existing table without a stream (one that predates the pipeline) gets one: only changes
    from then on stream, and `sales-ops backfill` brings the rows it already held (docs/backfill.md).
    """
    ddb = settings.client("dynamodb")
    try:
        table = ddb.describe_table(TableName=settings.table)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        table = ddb.create_table(
            TableName=settings.table,
            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=STREAM,
        )["TableDescription"]
    if not table.get("LatestStreamArn"):
        table = ddb.update_table(TableName=settings.table, StreamSpecification=STREAM)["TableDescription"]
    backups = ddb.describe_continuous_backups(TableName=settings.table)["ContinuousBackupsDescription"]
    if backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] != "ENABLED":
        ddb.update_continuous_backups(
            TableName=settings.table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return table["LatestStreamArn"]


def _kinesis(settings: Settings) -> str:
    kinesis = settings.client("kinesis")
    try:
        summary = kinesis.describe_stream_summary(StreamName=settings.kinesis_stream)
    except kinesis.exceptions.ResourceNotFoundException:
        kinesis.create_stream(StreamName=settings.kinesis_stream, ShardCount=KINESIS_SHARDS)
        summary = kinesis.describe_stream_summary(StreamName=settings.kinesis_stream)
    return summary["StreamDescriptionSummary"]["StreamARN"]


def _firehose(settings: Settings, kinesis_arn: str) -> None:
    firehose = settings.client("firehose")
    if settings.delivery_stream in firehose.list_delivery_streams()["DeliveryStreamNames"]:
        return
    role = _role(settings, "sales-ops-firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=settings.delivery_stream,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": kinesis_arn, "RoleARN": role},
        ExtendedS3DestinationConfiguration={
            "RoleARN": role,
            "BucketARN": f"arn:aws:s3:::{settings.bucket}",
            "Prefix": FIREHOSE_PREFIX,
            "ErrorOutputPrefix": FIREHOSE_ERROR_PREFIX,
            "BufferingHints": {"SizeInMBs": LOCAL_BUFFER_MB, "IntervalInSeconds": LOCAL_BUFFER_SECONDS},
            "CompressionFormat": settings.raw_compression,
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "Lambda",
                        "Parameters": [
                            {"ParameterName": "LambdaArn", "ParameterValue": lambda_arn(settings)},
                            {"ParameterName": "NumberOfRetries", "ParameterValue": "3"},
                        ],
                    }
                ],
            },
            "DynamicPartitioningConfiguration": {"Enabled": True},
        },
    )


def _pipe(settings: Settings, stream_arn: str, kinesis_arn: str) -> None:
    pipes = settings.client("pipes")
    try:
        current = pipes.describe_pipe(Name=settings.pipe)
    except pipes.exceptions.NotFoundException:
        current = None
    if current and current["Source"] == stream_arn:
        return
    if current:  # the table was recreated: its stream ARN changed, so the pipe must follow it
        pipes.delete_pipe(Name=settings.pipe)
    pipes.create_pipe(
        Name=settings.pipe,
        RoleArn=_role(settings, "sales-ops-pipe"),
        Source=stream_arn,
        SourceParameters={
            "DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": PIPE_BATCH_SIZE,
                "MaximumBatchingWindowInSeconds": 0,
                "MaximumRetryAttempts": 10,
            }
        },
        Target=kinesis_arn,
        TargetParameters={"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}},
    )


def _glue_database(settings: Settings) -> None:
    glue = settings.client("glue")
    try:
        glue.get_database(Name=settings.database)
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(DatabaseInput={"Name": settings.database})
