"""How far each stage of the stream is behind: one interface, a local and an aws implementation.

Locally the stand-ins' checkpoints give exact counts; AWS publishes ages only (CloudWatch metrics).
`sales_ops.targets` picks the implementation.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sales_ops.settings import Settings


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
