"""Each asset check passes on good data and fails, with its reasons, on data broken on purpose:
a poison record on the stream, items written with bad amounts, an item changed in DynamoDB that the
curated table has not caught up with, duplicated rows in orders_latest, a drifted raw schema.

This module runs on a stack of its own: it breaks data (and error objects never go away).
Tests run in file order; each one that breaks something repairs it before it ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import dagster as dg
from sales_ops.catalog import glue
from sales_ops.definitions import build_definitions
from sales_ops.defs.operations.alerts import WEBHOOK_ENV
from sales_ops.defs.operations.sensors import alerts_sensor
from sales_ops.defs.quality.sensors import processing_failed_sensor
from sales_ops.defs.resources import resources_for
from sales_ops.load.shop import run_load
from sales_ops.load.synthetic import write_lines
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.quality.checks import Written
from sales_ops.raw_objects import decode_body
from sales_ops.settings import RAW_PREFIX, Settings
from tests.harness import DELIVERY_POLL_S, stack_settings
from tests.webhook import webhook_receiver

pytestmark = pytest.mark.slow  # starts a stack of its own (module fixture)

Evaluations = dict[str, dg.AssetCheckEvaluation]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = stack_settings(tmp_path_factory.mktemp("checks-stack"))
    supervisor.up(settings, log=lambda *_: None)
    try:
        run_load(settings, 60, rate=0, seed=21)
        wait_delivered(settings, timeout=60, poll=DELIVERY_POLL_S)
        yield settings
    finally:
        supervisor.down(settings, log=lambda *_: None)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


# What the automation runs after new raw data (crawl, compaction), here with every check at once.
refresh_job = dg.define_asset_job(
    "refresh_for_tests",
    selection=dg.AssetSelection.assets("raw_orders_table", "orders_latest")
    | dg.AssetSelection.all_asset_checks(),
)


@pytest.fixture(scope="module")
def defs(stack: Settings, instance: dg.DagsterInstance) -> dg.Definitions:
    definitions = dg.Definitions.merge(
        build_definitions(resources_for(stack)), dg.Definitions(jobs=[refresh_job])
    )
    definitions.get_repository_def()  # resolved while the instance is current (defs-state storage)
    return definitions


CHECK_OPS = {
    "raw_schema": "raw_orders_table_raw_schema",
    "no_processing_failed": "raw_orders_files_no_processing_failed",
    "no_quarantined_objects": "raw_orders_files_no_quarantined_objects",
    "freshness": "raw_orders_files_freshness",
    "unique_order_id": "orders_latest_unique_order_id",
    "amounts": "orders_latest_amounts",
    "rejected_changes": "orders_latest_rejected_changes",
    "reconciliation": "orders_latest_reconciliation",
}


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str) -> Evaluations:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance)
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def check(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, run_config: dict | None = None
) -> dg.AssetCheckEvaluation:
    """One check alone, from the quality job (a failing blocking check fails its run: allowed here)."""
    result = defs.resolve_job_def("quality_job").execute_in_process(
        instance=instance, run_config=run_config or {}, op_selection=[CHECK_OPS[name]], raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def refresh(stack: Settings, defs: dg.Definitions, instance: dg.DagsterInstance, *only: str) -> Evaluations:
    """Crawl, compact, check: what the automation requests once new raw data is observed; with
    `only`, just those checks run after the crawl and the compaction (a test reading one check)."""
    wait_delivered(stack, timeout=60, poll=DELIVERY_POLL_S)
    if not only:
        return run(defs, instance, refresh_job.name)
    ops = ["raw_orders_table", "orders_latest", *(CHECK_OPS[name] for name in only)]
    result = defs.resolve_job_def(refresh_job.name).execute_in_process(instance=instance, op_selection=ops)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations.keys() == set(only)
    return evaluations


def text(evaluation: dg.AssetCheckEvaluation) -> str:
    return f"{evaluation.description} {evaluation.metadata}"


def put_order(stack: Settings, order_id: str, quantity: str, unit_price: str, total: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    item = {
        "order_id": order_id,
        "customer_id": "cus-test",
        "product_id": "sku-0001",
        "product_name": "Test Mug",
        "category": "home",
        "status": "PLACED",
        "channel": "web",
        "region": "us-east",
        "created_at": now,
        "updated_at": now,
    }
    attributes = {k: {"S": v} for k, v in item.items()}
    attributes |= {"quantity": {"N": quantity}, "unit_price": {"N": unit_price}, "order_total": {"N": total}}
    stack.client("dynamodb").put_item(TableName=stack.table, Item=attributes)


def test_every_check_passes_on_good_data(stack: Settings, defs, instance) -> None:
    evaluations = refresh(stack, defs, instance)
    assert set(evaluations) == {
        "raw_schema",
        "no_processing_failed",
        "no_quarantined_objects",
        "freshness",
        "unique_order_id",
        "amounts",
        "rejected_changes",
        "reconciliation",
    }
    failed = {name: e.description for name, e in evaluations.items() if not e.passed}
    assert not failed


def test_freshness_warns_when_the_newest_raw_data_is_too_old(defs, instance) -> None:
    config = {"ops": {"raw_orders_files_freshness": {"config": {"max_age_s": 0.0}}}}
    freshness = check(defs, instance, "freshness", config)
    assert not freshness.passed
    assert freshness.severity == dg.AssetCheckSeverity.WARN
    assert "old (limit 0s)" in freshness.description


def test_raw_schema_fails_when_the_table_drifts(stack: Settings, defs, instance) -> None:
    original = glue.get_table(stack, glue.RAW_TABLE)
    assert original is not None
    drifted = {
        k: original[k] for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
    }
    drifted["StorageDescriptor"] = {
        **original["StorageDescriptor"],
        "Columns": [
            {**c, "Type": "string"} if c["Name"] == "quantity" else c
            for c in original["StorageDescriptor"]["Columns"]
            if c["Name"] != "order_total"
        ],
    }
    glue.put_table(stack, drifted)
    try:
        schema = check(defs, instance, "raw_schema")
        assert not schema.passed
        assert "missing columns: order_total" in schema.description
        assert "quantity string" in schema.description
    finally:
        restored = {k: original[k] for k in drifted}
        glue.put_table(stack, restored)
    assert check(defs, instance, "raw_schema").passed


def test_amounts_fail_on_a_wrong_total_and_a_free_order(stack: Settings, defs, instance) -> None:
    # Each value is inside the contract (§2.1: a negative quantity never gets past the Lambda);
    # the totals are what the check judges.
    put_order(stack, "ord-test-wrong-total", "2", "10.00", "25.00")
    put_order(stack, "ord-test-negative", "1", "0.00", "0.00")
    try:
        amounts = refresh(stack, defs, instance, "amounts")["amounts"]
        assert not amounts.passed
        assert "ord-test-" in amounts.description
        assert amounts.metadata["row_count"].value > 0
    finally:
        ddb = stack.client("dynamodb")
        for order_id in ("ord-test-wrong-total", "ord-test-negative"):
            ddb.delete_item(TableName=stack.table, Key={"order_id": {"S": order_id}})
    assert refresh(stack, defs, instance, "amounts")["amounts"].passed


def alerts_tick(
    stack: Settings, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> str:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources_for(stack), definitions=defs
    ) as context:
        return alerts_sensor.evaluate_tick(context).cursor


def test_reconciliation_warns_while_changes_are_in_flight_and_errors_once_caught_up(
    stack: Settings, defs, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = stack.client("dynamodb")
    order_id = ddb.scan(TableName=stack.table, Limit=1)["Items"][0]["order_id"]["S"]
    with webhook_receiver() as receiver:
        monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
        cursor = alerts_tick(stack, defs, instance, None)  # alerts from here on
        # The stand-ins stopped: the change stays on the DynamoDB stream, in flight.
        supervisor.stop_service(supervisor.WORKERS, stack, timeout=30)
        try:
            ddb.update_item(
                TableName=stack.table,
                Key={"order_id": {"S": order_id}},
                UpdateExpression="SET #s = :s, #r = :r",
                ExpressionAttributeNames={"#s": "status", "#r": "region"},
                ExpressionAttributeValues={":s": {"S": "RETURNED"}, ":r": {"S": "changed-by-hand"}},
            )
            lagging = check(defs, instance, "reconciliation")
            assert not lagging.passed
            assert lagging.severity == dg.AssetCheckSeverity.WARN
            assert "in flight" in lagging.description and "1 different" in lagging.description
        finally:
            supervisor.up(stack, log=lambda *_: None)
        # Delivered to S3 but not compacted: the pipeline has caught up and still disagrees.
        wait_delivered(stack, timeout=60, poll=DELIVERY_POLL_S)
        caught_up = check(defs, instance, "reconciliation")
        assert not caught_up.passed
        assert caught_up.severity == dg.AssetCheckSeverity.ERROR
        assert "1 different" in caught_up.description
        assert order_id in text(caught_up) and "changed-by-hand" in text(caught_up)

        # One alert: the ERROR, not the WARN; with the asset, the check and the reason.
        alerts_tick(stack, defs, instance, cursor)
        assert len(receiver.messages) == 1, receiver.messages
        (message,) = receiver.messages
        assert message["sales_ops"]["kind"] == "check failed"
        assert (message["sales_ops"]["asset"], message["sales_ops"]["check"]) == (
            "orders_latest",
            "reconciliation",
        )
        assert "1 different" in message["sales_ops"]["reason"] and "reconciliation" in message["text"]
    # Once the change has been compacted, the two agree again.
    assert refresh(stack, defs, instance, "reconciliation")["reconciliation"].passed


def test_unique_order_id_fails_on_duplicated_rows(stack: Settings, defs, instance) -> None:
    # A file copied by mistake into a base partition the last compaction wrote (the check's scope).
    s3 = stack.client("s3")
    written = Written.load(stack).dates
    partition = next(p for p in glue.list_partitions(stack, "orders_base") if p["Values"][0] in written)
    prefix = partition["StorageDescriptor"]["Location"].split(f"s3://{stack.bucket}/", 1)[1].rstrip("/") + "/"
    source = next(o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix)["Contents"])
    copy = f"{prefix}copied-by-mistake.parquet"
    s3.copy_object(Bucket=stack.bucket, Key=copy, CopySource={"Bucket": stack.bucket, "Key": source})
    try:
        unique = check(defs, instance, "unique_order_id")
        assert not unique.passed
        assert "duplicate order_id" in unique.description
        assert unique.metadata["rows"].value > unique.metadata["distinct_order_ids"].value
    finally:
        s3.delete_object(Bucket=stack.bucket, Key=copy)
    assert check(defs, instance, "unique_order_id").passed


def test_rejected_changes_names_a_change_that_breaks_the_contract(stack: Settings, defs, instance) -> None:
    # A raw change with a status outside the contract (as a producer bypassing the Lambda's
    # validation could write; a string still, so the crawled schema stays): compaction rejects it
    # by name, the check lists it.
    s3 = stack.client("s3")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix=RAW_PREFIX)["Contents"])
    good = json.loads(decode_body(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()).splitlines()[0])
    bad = {**good, "order_id": "ord-bad-status", "event_id": "e-bad-status", "status": "cancelled"}
    bad["sequence_number"] = str(int(good["sequence_number"]) + 10**6)
    partition = key.removeprefix(RAW_PREFIX).rsplit("/", 1)[0]
    write_lines(stack, [(partition, json.dumps(bad).encode() + b"\n")])
    evaluations = refresh(stack, defs, instance)
    rejected = evaluations["rejected_changes"]
    assert not rejected.passed
    assert "ord-bad-status: status" in rejected.description
    failed = {name: e.description for name, e in evaluations.items() if not e.passed}
    assert failed.keys() == {"rejected_changes"}, failed  # the other orders are untouched
    # Its delete supersedes it (and leaves the stack clean for the other tests).
    gone = {**bad, "event_id": "e-bad-status-removed", "event_type": "REMOVE", "is_deleted": True}
    gone["sequence_number"] = str(int(bad["sequence_number"]) + 1)
    write_lines(stack, [(partition, json.dumps(gone).encode() + b"\n")])
    assert refresh(stack, defs, instance, "rejected_changes")["rejected_changes"].passed


def test_poison_record_triggers_the_failing_check_with_its_reason(stack: Settings, defs, instance) -> None:
    # A record no DynamoDB stream would produce: the Lambda answers ProcessingFailed.
    stack.client("kinesis").put_record(
        StreamName=stack.kinesis_stream, PartitionKey="poison", Data=b"{not json"
    )
    wait_delivered(stack, timeout=60, poll=DELIVERY_POLL_S)

    with dg.build_sensor_context(instance=instance, resources=resources_for(stack)) as context:
        tick = processing_failed_sensor.evaluate_tick(context)
    (request,) = tick.run_requests
    assert request.job_name == "processing_failed_job"
    assert tick.cursor.startswith("errors/processing-failed/")

    failing = run(defs, instance, request.job_name)["no_processing_failed"]
    assert not failing.passed
    assert "1 processing-failed record(s)" in failing.description
    assert "Lambda.ProcessingFailedStatus" in text(failing)
    assert "findings" in failing.metadata

    with dg.build_sensor_context(
        instance=instance, cursor=tick.cursor, resources=resources_for(stack)
    ) as context:
        assert processing_failed_sensor.evaluate_tick(context).run_requests == []
