"""The one target switch: which implementation of each service interface a target uses.

`local` runs DuckDB over the embedded AWS, the local crawler stand-in and checkpoint-based lag;
`aws` runs Athena, the Glue crawler and CloudWatch metrics. Everything that needs an engine, a
crawler or a lag monitor asks here (the CLI, the dashboard, the Dagster resources); nothing else
branches on `Settings.target`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sales_ops.catalog.crawlers import Crawler, GlueCrawler, LocalCrawler
from sales_ops.query import AthenaEngine, DuckDBEngine, SqlEngine
from sales_ops.settings import Settings
from sales_ops.stream_lag import CloudWatchStreamMonitor, LocalStreamMonitor, StreamMonitor


@dataclass(frozen=True)
class Target:
    name: str
    engine: Callable[[Settings], SqlEngine]
    crawler: Callable[[Settings], Crawler]
    monitor: Callable[[Settings], StreamMonitor]


TARGETS: dict[str, Target] = {
    "local": Target("local", DuckDBEngine, LocalCrawler, LocalStreamMonitor),
    "aws": Target("aws", AthenaEngine, GlueCrawler, CloudWatchStreamMonitor),
}


def target_of(settings: Settings) -> Target:
    return TARGETS[settings.target]


def engine_for(settings: Settings, result_reuse_minutes: int = 0) -> SqlEngine:
    """Athena on the aws target, DuckDB over the emulator locally.

    `result_reuse_minutes`: Athena may answer a query from a result of the same query up to that
    old (AthenaEngine); for the dashboard's reads only. DuckDB bills nothing, so it ignores it."""
    target = target_of(settings)
    if result_reuse_minutes and target.engine is AthenaEngine:
        return AthenaEngine(settings, result_reuse_minutes=result_reuse_minutes)
    return target.engine(settings)


def crawler_for(settings: Settings) -> Crawler:
    """The Glue crawler on aws, its stand-in locally."""
    return target_of(settings).crawler(settings)


def monitor_for(settings: Settings) -> StreamMonitor:
    """Stream lag from the stand-ins' checkpoints locally, from CloudWatch on aws."""
    return target_of(settings).monitor(settings)
