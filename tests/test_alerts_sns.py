"""Alerts to SNS and the webhook against the emulator's SNS (the aws code path, its endpoint the
emulator): a channel that fails is retried alone, the other is never sent the alert twice, and the
Subject SNS receives is one it accepts (issue 21)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

import dagster as dg
from sales_ops.defs.operations.alerts import WEBHOOK_ENV, Alert, deliver
from sales_ops.settings import Settings
from tests.webhook import webhook_receiver


def _messages(settings: Settings, queue_url: str) -> list[dict]:
    sqs = settings.client("sqs")
    out = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        out += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_a_failed_channel_is_retried_alone_and_the_others_are_not_sent_twice(
    local_stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    name = f"alarms-{uuid.uuid4().hex[:8]}"
    topic_arn = f"arn:aws:sns:{local_stack.region}:{local_stack.account}:{name}"
    aws = replace(local_stack, target="aws", alarm_topic_arn=topic_arn)  # the aws path, on the emulator
    alert = Alert("check failed", "orders_latest", "3 duplicated order_ids", check="unique_order_id")
    with dg.instance_for_test() as instance, webhook_receiver() as receiver:
        monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
        # The topic does not exist yet: SNS fails, the webhook gets the alert.
        assert any("SNS topic" in e for e in deliver(aws, instance, [alert], "test"))
        assert len(receiver.messages) == 1
        assert any("SNS topic" in e for e in deliver(aws, instance, [], "test"))  # SNS retried alone
        assert len(receiver.messages) == 1, "the webhook was sent the alert again"

        sns, sqs = aws.client("sns"), aws.client("sqs")
        assert sns.create_topic(Name=name)["TopicArn"] == topic_arn
        queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        try:
            assert deliver(aws, instance, [], "test") == []
            assert deliver(aws, instance, [], "test") == []  # delivered: gone from the outbox
            (published,) = _messages(aws, queue_url)
            assert published["Subject"] == "sales-ops check failed: orders_latest - unique_order_id"
            assert "3 duplicated order_ids" in published["Message"]
            assert len(receiver.messages) == 1
        finally:
            sns.delete_topic(TopicArn=topic_arn)
            sqs.delete_queue(QueueUrl=queue_url)
