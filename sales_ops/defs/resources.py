"""Resources: one interface per service, a local and an aws implementation of each.

In the style of dagster's project_fully_featured (resources per deployment) and hooli's abstract
resources: `RESOURCES_BY_TARGET` holds, for each target, the implementation of every interface, and
`build_resources` picks one set when the `Definitions` are built. Assets, checks and sensors ask
the interface for what they need and never look at the target. The implementations themselves are
the project's own classes, chosen once in `sales_ops.targets` (shared with the CLI).

- `PipelineResource`: the `Settings` (names, bucket, boto3 clients) for load, compaction, checks.
- `DynamoDBResource`: the source table, and how far the stream behind it lags
  (local: the stand-ins' checkpoints; aws: CloudWatch iterator age and Firehose data freshness).
- `s3` (dagster-aws `S3Resource`): listing raw and error objects.
- `CatalogResource`: the crawler and the Glue catalogue (local stand-in, or the Glue crawler).
- `SqlEngineResource`: DuckDB over S3 locally, Athena on aws.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_ops.catalog import glue
from sales_ops.catalog.crawlers import Crawler
from sales_ops.query import SqlEngine
from sales_ops.settings import LOCAL_CREDENTIALS, Settings, target_from_env
from sales_ops.stream_lag import StreamMonitor
from sales_ops.targets import TARGETS, Target


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


class _PerTarget(dg.ConfigurableResource):
    """Base of the per-target implementations: the target's implementations from `sales_ops.targets`."""

    pipeline: PipelineResource

    @classmethod
    def target(cls) -> Target:
        raise NotImplementedError


class DynamoDBResource(_PerTarget):
    """Interface: the source table, and how far the stream behind it lags."""

    def item_count(self) -> int:
        """Exact locally (a COUNT scan); on aws DescribeTable's ItemCount (refreshed every ~6 h)."""
        from sales_ops.quality.checks import table_item_count

        return table_item_count(self.pipeline.settings())

    def describe(self) -> dict[str, Any]:
        settings = self.pipeline.settings()
        return settings.client("dynamodb").describe_table(TableName=settings.table)["Table"]

    def monitor(self) -> StreamMonitor:
        return self.target().monitor(self.pipeline.settings())


class CatalogResource(_PerTarget):
    """Interface: the Glue catalogue and the crawler that keeps `raw_orders` current."""

    def crawler(self) -> Crawler:
        return self.target().crawler(self.pipeline.settings())

    def table(self, name: str) -> dict[str, Any] | None:
        return glue.get_table(self.pipeline.settings(), name)

    def partition_count(self, name: str) -> int:
        return len(glue.list_partitions(self.pipeline.settings(), name))


class SqlEngineResource(_PerTarget):
    """Interface: SQL over the lake (Athena's dialect)."""

    @contextmanager
    def engine(self) -> Iterator[SqlEngine]:
        """An engine for the duration of a step (DuckDB holds a connection: closed after)."""
        engine = self.target().engine(self.pipeline.settings())
        try:
            yield engine
        finally:
            engine.close()


def _implementation(interface: type[_PerTarget], target: Target, doc: str) -> type[_PerTarget]:
    """`interface` bound to `target`'s implementations (a class Dagster shows by its own name)."""
    name = f"{target.name.capitalize()}{interface.__name__}"
    return type(name, (interface,), {"__doc__": doc, "target": classmethod(lambda cls: target)})


LocalDynamoDBResource = _implementation(
    DynamoDBResource, TARGETS["local"], "The emulator's table; lag from the stand-ins' checkpoints."
)
AwsDynamoDBResource = _implementation(
    DynamoDBResource, TARGETS["aws"], "The stack's table; lag from CloudWatch (Kinesis, Firehose)."
)
LocalCatalogResource = _implementation(
    CatalogResource, TARGETS["local"], "The emulator's Glue catalogue and the local crawler stand-in."
)
AwsCatalogResource = _implementation(CatalogResource, TARGETS["aws"], "Glue and the stack's Glue crawler.")
LocalSqlEngineResource = _implementation(
    SqlEngineResource, TARGETS["local"], "DuckDB over the emulator's S3, Glue as the catalog."
)
AwsSqlEngineResource = _implementation(SqlEngineResource, TARGETS["aws"], "Athena in the stack's workgroup.")


def _s3(pipeline: PipelineResource, target: str) -> S3Resource:
    """dagster-aws's S3 resource: the default chain on aws, the emulator and its fixed keys locally."""
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


RESOURCES_BY_TARGET: dict[str, dict[str, type[_PerTarget]]] = {
    "local": {
        "dynamodb": LocalDynamoDBResource,
        "catalog": LocalCatalogResource,
        "sql": LocalSqlEngineResource,
    },
    "aws": {"dynamodb": AwsDynamoDBResource, "catalog": AwsCatalogResource, "sql": AwsSqlEngineResource},
}


def build_resources(pipeline: PipelineResource | None = None) -> dict[str, Any]:
    """Every resource the definitions use, for the pipeline's target, all pointing at one pipeline."""
    pipeline = pipeline or PipelineResource()
    target = pipeline.target or target_from_env()
    resources = {key: cls(pipeline=pipeline) for key, cls in RESOURCES_BY_TARGET[target].items()}
    return {"pipeline": pipeline, "s3": _s3(pipeline, target), **resources}


def resources_for(settings: Settings) -> dict[str, Any]:
    """Resources for an explicit stack (tests, scripts)."""
    return build_resources(PipelineResource(**settings.resource_config()))


defs = dg.Definitions(resources=build_resources())
