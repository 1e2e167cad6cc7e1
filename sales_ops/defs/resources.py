"""Resources: one interface per service, with local and aws implementations behind it.

Every resource hangs off `PipelineResource`, which turns its three optional fields (target,
endpoint, state dir; unset = the SALES_OPS_* environment) into the project's `Settings`. Assets,
checks and sensors ask these resources for what they need and never look at the target: the choice
is made here (stream monitor, S3 client) or in the factory this module calls (`engine_for`,
`crawler_for`, shared with the CLI).

- `PipelineResource`: the `Settings` (names, bucket, boto3 clients) for load, compaction, checks.
- `DynamoDBResource`: item count, table size and stream lag (local: the stand-ins' checkpoints;
  aws: CloudWatch iterator age and Firehose data freshness).
- `s3` (dagster-aws `S3Resource`): listing raw and error objects, with the emulator's endpoint
  and credentials on the local target.
- `CatalogResource`: the crawler and the Glue catalogue.
- `SqlEngineResource`: Athena on aws, DuckDB over the emulator's S3 locally.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_ops import catalog
from sales_ops.catalog import Crawler, crawler_for
from sales_ops.engine import SqlEngine, engine_for
from sales_ops.settings import LOCAL_CREDENTIALS, Settings


@lru_cache(maxsize=16)
def _settings(env: frozenset[tuple[str, str]]) -> Settings:
    # Cached per effective environment: on aws, Settings.from_env reads the stack's outputs.
    return Settings.from_env(env=dict(env))


class PipelineResource(dg.ConfigurableResource):
    """Where the pipeline lives. Unset fields fall back to SALES_OPS_TARGET/ENDPOINT/STATE_DIR."""

    target: str | None = None
    endpoint_url: str | None = None
    state_dir: str | None = None

    def settings(self) -> Settings:
        env = dict(os.environ)
        overrides = {
            "SALES_OPS_TARGET": self.target,
            "SALES_OPS_ENDPOINT": self.endpoint_url,
            "SALES_OPS_STATE_DIR": self.state_dir,
        }
        env.update({key: value for key, value in overrides.items() if value})
        relevant = ("SALES_OPS_", "AWS_REGION", "AWS_DEFAULT_REGION")
        return _settings(frozenset((k, v) for k, v in env.items() if k.startswith(relevant)))


# --- stream monitoring: the one target-specific piece that is ours ---------------------------------
@dataclass(frozen=True)
class StageLag:
    """How far one stage of the stream is behind: records waiting (when known) and their age."""

    stage: str
    pending_records: int | None
    age_s: float | None


class StreamMonitor(Protocol):
    def lag(self) -> list[StageLag]: ...

    def wait_delivered(self, timeout: float) -> float | None: ...


class LocalStreamMonitor:
    """Exact lag from the stand-ins' checkpoints (records on each source after its checkpoint)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def lag(self) -> list[StageLag]:
        from sales_ops.local.progress import pipeline_lag

        return [StageLag(s.stage, s.pending, s.oldest_pending_age_s) for s in pipeline_lag(self.settings)]

    def wait_delivered(self, timeout: float) -> float | None:
        from sales_ops.local.progress import wait_delivered

        return wait_delivered(self.settings, timeout)


class CloudWatchStreamMonitor:
    """AWS publishes ages, not counts: Kinesis iterator age (Firehose reading the stream) and
    Firehose's DeliveryToS3.DataFreshness (oldest record not yet in S3)."""

    WINDOW = timedelta(minutes=10)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _max(self, namespace: str, metric: str, dimension: tuple[str, str]) -> float | None:
        now = datetime.now(UTC)
        points = self.settings.client("cloudwatch").get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=now - self.WINDOW,
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max((p["Maximum"] for p in points), default=None)

    def lag(self) -> list[StageLag]:
        iterator_ms = self._max(
            "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", ("StreamName", self.settings.kinesis_stream)
        )
        freshness_s = self._max(
            "AWS/Firehose",
            "DeliveryToS3.DataFreshness",
            ("DeliveryStreamName", self.settings.delivery_stream),
        )
        return [
            StageLag("kinesis", None, None if iterator_ms is None else round(iterator_ms / 1000, 1)),
            StageLag("firehose", None, freshness_s),
        ]

    def wait_delivered(self, timeout: float) -> float | None:
        return None  # AWS offers no exact "all delivered"; the freshness check covers it


_MONITORS: dict[str, type[LocalStreamMonitor] | type[CloudWatchStreamMonitor]] = {
    "local": LocalStreamMonitor,
    "aws": CloudWatchStreamMonitor,
}


class DynamoDBResource(dg.ConfigurableResource):
    """The source table: items, size, and how far the stream behind it lags."""

    pipeline: PipelineResource

    def item_count(self) -> int:
        """Exact count (a COUNT scan): DescribeTable's ItemCount is refreshed only every ~6 h."""
        settings = self.pipeline.settings()
        pages = settings.client("dynamodb").get_paginator("scan")
        return sum(page["Count"] for page in pages.paginate(TableName=settings.table, Select="COUNT"))

    def describe(self) -> dict[str, Any]:
        settings = self.pipeline.settings()
        return settings.client("dynamodb").describe_table(TableName=settings.table)["Table"]

    def monitor(self) -> StreamMonitor:
        settings = self.pipeline.settings()
        return _MONITORS[settings.target](settings)


class CatalogResource(dg.ConfigurableResource):
    """The Glue catalogue and the crawler that keeps `raw_orders` current."""

    pipeline: PipelineResource

    def crawler(self) -> Crawler:
        return crawler_for(self.pipeline.settings())

    def table(self, name: str) -> dict[str, Any] | None:
        return catalog.get_table(self.pipeline.settings(), name)

    def partition_count(self, name: str) -> int:
        return len(catalog.list_partitions(self.pipeline.settings(), name))


class SqlEngineResource(dg.ConfigurableResource):
    """Athena (aws) or DuckDB over S3 (local), behind one `SqlEngine` interface."""

    pipeline: PipelineResource

    @contextmanager
    def engine(self) -> Iterator[SqlEngine]:
        """An engine for the duration of a step (DuckDB holds a connection: closed after)."""
        engine = engine_for(self.pipeline.settings())
        try:
            yield engine
        finally:
            engine.close()


def s3_resource(pipeline: PipelineResource) -> S3Resource:
    """dagster-aws's S3 resource, aimed at the emulator (with its fixed credentials) when local."""
    target = (pipeline.target or os.environ.get("SALES_OPS_TARGET") or "local").strip().lower()
    if target != "local":
        return S3Resource(region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    settings = pipeline.settings()
    key, secret = LOCAL_CREDENTIALS
    return S3Resource(
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def build_resources(pipeline: PipelineResource | None = None) -> dict[str, Any]:
    """Every resource the definitions use, all pointing at the same pipeline."""
    pipeline = pipeline or PipelineResource()
    return {
        "pipeline": pipeline,
        "dynamodb": DynamoDBResource(pipeline=pipeline),
        "s3": s3_resource(pipeline),
        "catalog": CatalogResource(pipeline=pipeline),
        "sql": SqlEngineResource(pipeline=pipeline),
    }


def resources_for(settings: Settings) -> dict[str, Any]:
    """Resources for an explicit local stack (tests, scripts)."""
    return build_resources(
        PipelineResource(
            target=settings.target, endpoint_url=settings.endpoint_url, state_dir=str(settings.state_dir)
        )
    )


defs = dg.Definitions(resources=build_resources())
