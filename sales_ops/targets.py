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


def engine_for(settings: Settings) -> SqlEngine:
    """Athena on the aws target, DuckDB over the emulator locally."""
    return target_of(settings).engine(settings)


def crawler_for(settings: Settings) -> Crawler:
    """The Glue crawler on aws, its stand-in locally."""
    return target_of(settings).crawler(settings)


def monitor_for(settings: Settings) -> StreamMonitor:
    """Stream lag from the stand-ins' checkpoints locally, from CloudWatch on aws."""
    return target_of(settings).monitor(settings)
