"""Alerts out of Dagster: a failed run, a failing ERROR check, a freshness breach.

Each goes, as one message, to
- a Slack-compatible incoming webhook (JSON with `text`, the field every Slack-style receiver
  reads: https://api.slack.com/messaging/webhooks) whose URL is `SALES_OPS_ALERT_WEBHOOK`;
  no variable, no webhook;
- on the aws target, the stack's alarm SNS topic (`AlarmTopicArn` output → Settings.alarm_topic_arn),
  with SNS Publish (Subject at most 100 characters:
  https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
A delivery that fails raises `AlertDeliveryError` after every channel was tried, so the sensor
tick shows it failed and (for the event sensor) its cursor does not move past the alert.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

from sales_ops.settings import Settings

WEBHOOK_ENV = "SALES_OPS_ALERT_WEBHOOK"
TIMEOUT_S = 10.0
MAX_REASON = 2000  # characters of the reason in a message (Slack truncates long texts anyway)


class AlertDeliveryError(RuntimeError):
    """An alert could not be delivered to one of its channels; the message says which and why."""


@dataclass(frozen=True)
class Alert:
    kind: str  # "run failed", "check failed", "freshness"
    asset: str  # the asset(s) concerned, as the UI names them
    reason: str
    check: str | None = None
    run_id: str | None = None

    @property
    def title(self) -> str:
        what = f"{self.asset} · {self.check}" if self.check else self.asset
        return f"sales-ops {self.kind}: {what}"

    def text(self) -> str:
        lines = [f"*{self.title}*"]
        if self.run_id:
            lines.append(f"run {self.run_id}")
        lines.append(self.reason[:MAX_REASON])
        return "\n".join(lines)

    def slack_payload(self) -> dict[str, object]:
        """Slack's incoming-webhook JSON: `text`, plus the fields on their own for other receivers."""
        return {
            "text": self.text(),
            "sales_ops": {
                "kind": self.kind,
                "asset": self.asset,
                "check": self.check,
                "reason": self.reason[:MAX_REASON],
                "run_id": self.run_id,
            },
        }


def webhook_url(env: dict[str, str] | None = None) -> str | None:
    """The webhook URL from the environment, or None when alerts by webhook are off."""
    url = (env if env is not None else os.environ).get(WEBHOOK_ENV, "").strip()
    if not url:
        return None
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise AlertDeliveryError(f"{WEBHOOK_ENV} must be an http(s) URL, not {url!r}")
    return url


def post_webhook(url: str, alert: Alert) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(alert.slack_payload()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise AlertDeliveryError(f"webhook {urlparse(url).netloc}: {exc}") from exc


def publish_sns(settings: Settings, topic_arn: str, alert: Alert) -> None:
    try:
        settings.client("sns").publish(TopicArn=topic_arn, Subject=alert.title[:100], Message=alert.text())
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise AlertDeliveryError(f"SNS topic {topic_arn}: {exc}") from exc


def send(settings: Settings, alert: Alert) -> list[str]:
    """Deliver `alert` to every configured channel; returns the channels it reached."""
    sent, errors = [], []
    try:
        url = webhook_url()
        if url:
            post_webhook(url, alert)
            sent.append("webhook")
    except AlertDeliveryError as exc:
        errors.append(str(exc))
    topic = settings.alarm_topic_arn
    if topic and not settings.is_local:
        try:
            publish_sns(settings, topic, alert)
            sent.append("sns")
        except AlertDeliveryError as exc:
            errors.append(str(exc))
    if errors:
        raise AlertDeliveryError(f"alert {alert.title!r} not delivered: {'; '.join(errors)}")
    return sent
