"""GetCrawlerMetrics in the emulator, which moto 5 does not implement.

Without it every call of the aws code path's crawler (`catalog.crawlers.GlueCrawler`) against the
emulator failed with a server error that botocore retried five times: ~20 s of back-off a call
(tests/test_iam.py). moto's crawlers never run, so each crawler named reports no run yet, in the
shape of Glue's answer (https://docs.aws.amazon.com/glue/latest/webapi/API_GetCrawlerMetrics.html);
no names: every crawler. Applied only in the emulator process (`emulator.install_patches`).
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from moto.core.responses import ActionResult
    from moto.glue.responses import GlueResponse

    def get_crawler_metrics(self: GlueResponse) -> ActionResult:
        known = {crawler.name for crawler in self.glue_backend.get_crawlers()}
        names = self.parameters.get("CrawlerNameList") or sorted(known)
        return ActionResult({"CrawlerMetricsList": [_no_run(name) for name in names if name in known]})

    GlueResponse.get_crawler_metrics = get_crawler_metrics  # type: ignore[attr-defined]  # the patch


def _no_run(name: str) -> dict[str, Any]:
    """A crawler's metrics before its first run."""
    return {
        "CrawlerName": name,
        "TimeLeftSeconds": 0.0,
        "StillEstimating": False,
        "LastRuntimeSeconds": 0.0,
        "MedianRuntimeSeconds": 0.0,
        "TablesCreated": 0,
        "TablesUpdated": 0,
        "TablesDeleted": 0,
    }
