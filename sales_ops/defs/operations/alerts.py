"""Alerts out of Dagster: a failed run, a failing ERROR check, a freshness breach.

Each goes, as one message, to
- a Slack-compatible incoming webhook (JSON with `text`, the field every Slack-style receiver
  reads: https://api.slack.com/messaging/webhooks) whose URL is `SALES_OPS_ALERT_WEBHOOK`;
  no variable, no webhook;
- on the aws target, the stack's alarm SNS topic (`AlarmTopicArn` output → Settings.alarm_topic_arn),
  with SNS Publish (the operator policy grants `sns:Publish` on that topic). Its Subject must be
  "UTF-8 text with no line breaks or control characters, and less than 100 characters long"
  (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html): `Alert.subject` is at most 99
  printable ASCII characters.

Delivery is per channel (`deliver`): a channel that fails is retried at the next tick from an
outbox kept in the Dagster instance, and only that channel: the others, already reached, are not
sent the alert again. The sensors' own cursors move on.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from sales_ops.settings import Settings

WEBHOOK_ENV = "SALES_OPS_ALERT_WEBHOOK"
TIMEOUT_S = 10.0
MAX_REASON = 2000  # characters of the reason in a message (Slack truncates long texts anyway)
MAX_SUBJECT = 99  # SNS: "less than 100 characters"
OUTBOX_LIMIT = 200  # undelivered (alert, channel) pairs kept per sensor; the oldest go first
OUTBOX_MAX_AGE_S = 24 * 3600  # a channel still failing after a day: the alert is given up (logged)
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")


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

    @property
    def subject(self) -> str:
        """The title as an SNS Subject: printable ASCII on one line, under 100 characters."""
        text = _NOT_PRINTABLE_ASCII.sub(" ", self.title.replace("·", "-"))
        text = " ".join(text.split())
        return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3].rstrip() + "..."

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
        settings.client("sns").publish(TopicArn=topic_arn, Subject=alert.subject, Message=alert.text())
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise AlertDeliveryError(f"SNS topic {topic_arn}: {exc}") from exc


def channels(settings: Settings) -> list[str]:
    """The channels configured for this target ("webhook", "sns"), in delivery order."""
    out = ["webhook"] if os.environ.get(WEBHOOK_ENV, "").strip() else []  # a bad URL fails in send_to
    if settings.alarm_topic_arn and not settings.is_local:
        out.append("sns")
    return out


def send_to(settings: Settings, channel: str, alert: Alert) -> None:
    """Deliver `alert` to one channel; AlertDeliveryError says why it could not."""
    if channel == "webhook":
        url = webhook_url()
        if url:
            post_webhook(url, alert)
    elif channel == "sns" and settings.alarm_topic_arn:
        publish_sns(settings, settings.alarm_topic_arn, alert)


def send(settings: Settings, alert: Alert) -> list[str]:
    """Deliver `alert` to every configured channel; returns the channels it reached. Raises
    AlertDeliveryError after every channel was tried if one failed (`deliver` retries only it)."""
    sent, errors = [], []
    for channel in channels(settings):
        try:
            send_to(settings, channel, alert)
            sent.append(channel)
        except AlertDeliveryError as exc:
            errors.append(str(exc))
    if errors:
        raise AlertDeliveryError(f"alert {alert.title!r} not delivered: {'; '.join(errors)}")
    return sent


def _outbox_key(name: str) -> str:
    return f"sales_ops/alerts/outbox/{name}"


def _load_outbox(instance: Any, name: str) -> list[dict[str, Any]]:
    # The instance's key-value store (the one Dagster's daemons keep cursors in): shared by the
    # daemon's threads and processes, and kept with the instance's storage.
    text = instance.run_storage.get_cursor_values({_outbox_key(name)}).get(_outbox_key(name))
    try:
        entries = json.loads(text) if text else []
    except ValueError:
        entries = []
    return [e for e in entries if isinstance(e, dict) and {"alert", "channel", "since"} <= set(e)]


def deliver(settings: Settings, instance: Any, alerts: list[Alert], outbox: str) -> list[str]:
    """Send `alerts` to every configured channel, after what `outbox` still holds; returns the
    errors. A channel that fails keeps that (alert, channel) in the outbox for the next call; the
    channels that succeeded are never sent it again. The outbox is bounded (OUTBOX_LIMIT entries,
    OUTBOX_MAX_AGE_S): what falls out is reported as an error, not kept for ever."""
    now = time.time()
    pending = _load_outbox(instance, outbox)
    pending += [{"alert": asdict(a), "channel": c, "since": now} for a in alerts for c in channels(settings)]
    kept: list[dict[str, Any]] = []
    errors: list[str] = []
    for entry in pending:
        alert = Alert(**entry["alert"])
        try:
            send_to(settings, entry["channel"], alert)
        except AlertDeliveryError as exc:
            if now - entry["since"] > OUTBOX_MAX_AGE_S:
                errors.append(f"alert {alert.title!r} given up on {entry['channel']} after a day: {exc}")
            else:
                errors.append(f"alert {alert.title!r} not delivered (retried next tick): {exc}")
                kept.append(entry)
    dropped = kept[:-OUTBOX_LIMIT] if len(kept) > OUTBOX_LIMIT else []
    errors += [f"alert {e['alert']['kind']} on {e['alert']['asset']} dropped: outbox full" for e in dropped]
    instance.run_storage.set_cursor_values({_outbox_key(outbox): json.dumps(kept[-OUTBOX_LIMIT:])})
    return errors
