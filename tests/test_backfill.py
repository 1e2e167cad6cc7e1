"""`sales-ops backfill` on the emulator: the real export layout, repair after lost raw objects, changes
after the backfill, a second backfill, a backfill during a load, rows that never streamed, and the
Dagster automation. Each stack here is its own emulator: these tests delete raw data on purpose
and compare orders_latest with the whole table.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import dagster as dg
from sales_ops.backfill import apply_export, backfill
from sales_ops.backfill.export import EXPORT_PREFIX, ExportReader, latest_export, start_export, wait_export
from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.baseline import BASELINE_PREFIX, BaselineWriter, baseline_row, snapshot_time
from sales_ops.curated.compaction import compact
from sales_ops.curated.tables import current_versions
from sales_ops.load.shop import run_load
from sales_ops.load.synthetic import ChangeStream, TimedChange, raw_lines, write_lines
from sales_ops.local import supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.quality.reconciliation import check_reconciliation
from sales_ops.query import DuckDBEngine
from sales_ops.schema import NOT_SALE_STATUSES, ORDER_VALUE_FIELDS
from sales_ops.settings import RAW_PREFIX, Settings
from tests.harness import DELIVERY_POLL_S, CliOutcome, run_cli, stack_env, stack_settings
from tests.helpers import dynamodb_items, list_keys

pytestmark = pytest.mark.slow
# Delivery is polled more often than `load --wait` does (0.5 s): each wait here ends within a tenth
# of a second of Firehose's flush (1 s buffer), not up to half a second after it.


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = stack_settings(tmp_path_factory.mktemp("backfill-stack"))
    supervisor.up(settings, log=lambda *_: None)
    try:
        for part in range(3):  # three deliveries: several raw objects, so a third of them is a real part
            run_load(settings, 50, rate=0, seed=31 + 100 * part)
            wait_delivered(settings, timeout=120, poll=DELIVERY_POLL_S)
        yield settings
    finally:
        supervisor.down(settings, log=lambda *_: None)
        log = supervisor.EMULATOR.logfile(settings).read_text()
        assert "snapshot failed" not in log, "the emulator could not snapshot its state after an export"


@pytest.fixture()
def engine(stack: Settings) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(stack) as eng:
        yield eng


def sales_ops(settings: Settings, *args: str) -> CliOutcome:
    """`sales-ops ARGS` on this stack, in this process (what it prints and its exit code)."""
    return run_cli(*args, env=stack_env(settings))


def refresh(settings: Settings, engine: DuckDBEngine, full: bool = False) -> None:
    wait_delivered(settings, timeout=120, poll=DELIVERY_POLL_S)
    LocalCrawler(settings).run()
    compact(settings, engine, full=full)


def latest(settings: Settings, engine: DuckDBEngine) -> dict[str, dict]:
    rows = engine.query(f"SELECT * FROM {settings.database}.orders_latest").as_dicts()
    return {row["order_id"]: row for row in rows}


def assert_equals_dynamodb(settings: Settings, engine: DuckDBEngine) -> dict[str, dict]:
    """orders_latest holds exactly the table's orders with the table's values, and the named
    query's totals are the table's."""
    table = dynamodb_items(settings)
    rows = latest(settings, engine)
    assert sorted(rows) == sorted(table)
    for order_id, item in table.items():
        got = {f: rows[order_id][f] for f in ORDER_VALUE_FIELDS}
        want = {f: item.get(f) for f in ORDER_VALUE_FIELDS}
        assert {k: Decimal(str(v)) if isinstance(v, Decimal) else v for k, v in got.items()} == want, order_id
        assert rows[order_id]["order_date"].isoformat() == item["created_at"][:10]
    totals: dict[str, Decimal] = {}
    for item in table.values():
        if item["status"] not in NOT_SALE_STATUSES:
            totals[item["product_name"]] = totals.get(item["product_name"], Decimal(0)) + item["order_total"]
    named = engine.named("total_sales_by_product").as_dicts()
    assert {r["product_name"]: Decimal(str(r["total_sales"])) for r in named} == totals
    return rows


def delete_a_third_of_raw(settings: Settings) -> int:
    """Every third raw object, never the newest (the freshness check looks at it)."""
    keys = sorted(list_keys(settings, RAW_PREFIX))[:-1][::3]
    s3 = settings.client("s3")
    for key in keys:
        s3.delete_object(Bucket=settings.bucket, Key=key)
    return len(keys)


def test_the_export_has_the_real_aws_layout(stack: Settings) -> None:
    info = wait_export(stack, start_export(stack).arn, timeout=120)
    assert ":table/orders/export/" in info.arn and info.status == "COMPLETED"
    root = f"{EXPORT_PREFIX}/AWSDynamoDB/{info.export_id}/"
    keys = set(list_keys(stack, root))
    assert {root + name for name in ("_started", "manifest-summary.json", "manifest-files.json")} <= keys
    s3 = stack.client("s3")
    summary = json.loads(
        s3.get_object(Bucket=stack.bucket, Key=root + "manifest-summary.json")["Body"].read()
    )
    assert summary["exportArn"] == info.arn and summary["outputFormat"] == "DYNAMODB_JSON"
    assert summary["manifestFilesS3Key"] == root + "manifest-files.json"
    files = s3.get_object(Bucket=stack.bucket, Key=summary["manifestFilesS3Key"])["Body"].read().splitlines()
    entries = [json.loads(line) for line in files]
    assert all(
        e["dataFileS3Key"].startswith(root + "data/") and e["dataFileS3Key"].endswith(".json.gz")
        for e in entries
    )
    first = gzip.decompress(
        s3.get_object(Bucket=stack.bucket, Key=entries[0]["dataFileS3Key"])["Body"].read()
    )
    line = json.loads(first.splitlines()[0])
    assert set(line) == {"Item"} and line["Item"]["order_id"] == {"S": line["Item"]["order_id"]["S"]}
    assert sum(e["itemCount"] for e in entries) == summary["itemCount"] == len(dynamodb_items(stack))
    items = {i["order_id"]: i for i in ExportReader(stack, info).items()}
    assert items == dynamodb_items(stack)


def test_lost_raw_objects_are_repaired_by_backfill_and_compact(stack: Settings, engine) -> None:
    refresh(stack, engine)
    assert_equals_dynamodb(stack, engine)
    assert delete_a_third_of_raw(stack) > 0
    compact(stack, engine, full=True)  # the lake now lacks what those objects held

    check = sales_ops(stack, "check", "--json")
    assert check.returncode == 1
    reconciliation = next(o for o in json.loads(check.stdout) if o["name"] == "reconciliation")
    assert not reconciliation["passed"]
    details = reconciliation["details"]
    assert details["missing"] + details["different"] > 0
    assert "missing" in reconciliation["summary"] and "sales-ops backfill" in reconciliation["summary"]

    done = sales_ops(stack, "backfill", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows_written"] == report["missing"] + report["extra"] + report["different"] > 0
    assert report["missing"] == details["missing"] and report["different"] == details["different"]
    assert list_keys(stack, BASELINE_PREFIX)
    assert sales_ops(stack, "compact").returncode == 0
    rows = assert_equals_dynamodb(stack, engine)
    after = sales_ops(stack, "check")
    assert after.returncode == 0, after.stdout + after.stderr

    compact(stack, engine, full=True)
    assert latest(stack, engine) == rows, "--full differs from incremental"


def test_changes_after_the_backfill_win(stack: Settings, engine) -> None:
    ddb = stack.client("dynamodb")
    order_ids = sorted(dynamodb_items(stack))[:6]
    for order_id in order_ids[:3]:
        ddb.update_item(
            TableName=stack.table,
            Key={"order_id": {"S": order_id}},
            UpdateExpression="SET #r = :r",
            ExpressionAttributeNames={"#r": "region"},
            ExpressionAttributeValues={":r": {"S": "changed-after-backfill"}},
        )
    for order_id in order_ids[3:]:
        ddb.delete_item(TableName=stack.table, Key={"order_id": {"S": order_id}})
    run_load(stack, 20, rate=0, seed=32)
    refresh(stack, engine)
    rows = assert_equals_dynamodb(stack, engine)
    assert {rows[o]["region"] for o in order_ids[:3]} == {"changed-after-backfill"}
    compact(stack, engine, full=True)
    assert latest(stack, engine) == rows, "--full differs from incremental"


def test_a_second_backfill_changes_nothing(stack: Settings, engine) -> None:
    refresh(stack, engine)
    versions = current_versions(stack)
    before = latest(stack, engine)
    report = backfill(stack, engine, timeout=120)
    assert (report.missing, report.extra, report.different, report.rows_written) == (0, 0, 0, 0)
    assert report.merge is None
    assert current_versions(stack) == versions and latest(stack, engine) == before
    # Reconciliation from that export (no table scan) agrees.
    outcome = check_reconciliation(stack, engine, source="export")
    assert outcome.passed, outcome.summary
    assert outcome.details["as_of"] == report.export_time


def test_an_older_export_never_undoes_newer_changes(stack: Settings, engine) -> None:
    old = latest_export(stack)
    ddb = stack.client("dynamodb")
    order_id = sorted(dynamodb_items(stack))[0]
    ddb.update_item(
        TableName=stack.table,
        Key={"order_id": {"S": order_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "RETURNED"}},
    )
    refresh(stack, engine)
    report = apply_export(stack, engine, old.arn)  # the export before that change, applied late
    assert report.newer_than_export >= 1 and report.rows_written == 0
    assert latest(stack, engine)[order_id]["status"] == "RETURNED"
    assert_equals_dynamodb(stack, engine)


def test_a_backfill_during_a_load_converges_once_the_load_has_drained(stack: Settings, engine) -> None:
    loader = threading.Thread(target=run_load, args=(stack, 200), kwargs={"rate": 150, "seed": 33})
    loader.start()
    try:
        report = backfill(stack, engine, timeout=120)
    finally:
        loader.join()
    assert report.export_items > 0
    refresh(stack, engine)
    rows = assert_equals_dynamodb(stack, engine)
    compact(stack, engine, full=True)
    assert latest(stack, engine) == rows, "--full differs from incremental"
    assert check_reconciliation(stack, engine).passed


def test_reconciliation_failures_start_a_backfill_in_dagster(stack: Settings, engine) -> None:
    from sales_ops.definitions import build_definitions
    from sales_ops.defs.curated.backfill import FAILURES_BEFORE_BACKFILL, reconciliation_failures_sensor
    from sales_ops.defs.resources import resources_for

    delete_a_third_of_raw(stack)
    compact(stack, engine, full=True)
    with dg.instance_for_test() as instance:
        defs = build_definitions(resources_for(stack))
        quality = defs.resolve_job_def("quality_job")
        for _ in range(FAILURES_BEFORE_BACKFILL):
            result = quality.execute_in_process(
                instance=instance, op_selection=["orders_latest_reconciliation"], raise_on_error=False
            )
            (evaluation,) = result.get_asset_check_evaluations()
            assert not evaluation.passed and "backfill" in (evaluation.description or "")
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        result = reconciliation_failures_sensor(context)
        assert len(result.run_requests) == 1
        again = reconciliation_failures_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor)
        )
        assert not again.run_requests  # one backfill per streak of failures

        run = defs.resolve_job_def("backfill_job").execute_in_process(instance=instance)
        assert run.success
        (materialization,) = run.asset_materializations_for_node("orders_backfill")
        assert materialization.metadata["rows_written"].value > 0
        check = quality.execute_in_process(instance=instance, op_selection=["orders_latest_reconciliation"])
        assert check.get_asset_check_evaluations()[0].passed
    assert_equals_dynamodb(stack, engine)


def test_rows_that_never_streamed_appear_after_a_backfill(fresh_stack: Settings) -> None:
    """A table that held orders before the pipeline existed: no stream, then `local up` adds one."""
    settings = fresh_stack
    supervisor.stop_service(supervisor.WORKERS, settings, timeout=30)
    ddb = settings.client("dynamodb")
    ddb.delete_table(TableName=settings.table)
    ddb.create_table(
        TableName=settings.table,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    run_load(settings, 60, rate=0, seed=34)  # written with no stream: never reaches S3
    before = dynamodb_items(settings)
    supervisor.up(settings, log=lambda *_: None)  # the pipeline is deployed onto the table
    assert "LatestStreamArn" in ddb.describe_table(TableName=settings.table)["Table"]
    assert not list_keys(settings, RAW_PREFIX)

    with DuckDBEngine(settings) as engine:
        report = backfill(settings, engine, timeout=120)
        assert report.missing == len(before) and report.rows_written == len(before)
        assert_equals_dynamodb(settings, engine)
        run_load(settings, 30, rate=0, seed=35)  # from now on, changes stream
        refresh(settings, engine)
        assert list_keys(settings, RAW_PREFIX)
        rows = assert_equals_dynamodb(settings, engine)
        compact(settings, engine, full=True)
        assert latest(settings, engine) == rows


def test_backfill_refuses_bad_input(stack: Settings) -> None:
    bad_time = sales_ops(stack, "backfill", "--at", "yesterday")
    assert bad_time.returncode == 2 and "ISO-8601" in bad_time.stderr and "Traceback" not in bad_time.stderr
    future = sales_ops(stack, "backfill", "--wait", "--at", "2999-01-01T00:00:00Z")
    assert future.returncode == 1 and "Traceback" not in future.stderr
    malformed = sales_ops(stack, "backfill", "--export", stack.table + "/export/nope")
    assert malformed.returncode == 2 and "not an export ARN" in malformed.stderr
    arn = f"arn:aws:dynamodb:{stack.region}:{stack.account}:table/{stack.table}/export/01-nope"
    unknown = sales_ops(stack, "backfill", "--export", arn)
    assert (
        unknown.returncode == 1 and "ExportNotFound" in unknown.stderr and "Traceback" not in unknown.stderr
    )


def _order(order_id: str, at: datetime, status: str) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "order_id": order_id,
        "customer_id": "cus-1",
        "product_id": "sku-1",
        "product_name": "Mug",
        "category": "home",
        "quantity": 2,
        "unit_price": Decimal("10.00"),
        "order_total": Decimal("20.00"),
        "status": status,
        "channel": "web",
        "region": "eu",
        "created_at": stamp,
        "updated_at": stamp,
    }


def test_the_merge_rule_between_exports_and_stream_events(space: Settings) -> None:
    """Hand-made events and baseline rows, merged by the compaction SQL, arriving in either order."""
    export_at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    created = export_at - timedelta(minutes=30)
    stream = ChangeStream(seed=5)
    fields = {k: v for k, v in _order("x", created, "PLACED").items() if k not in ("order_id", "created_at")}

    def events(*changes: tuple[str, datetime, str]) -> None:
        timed = [
            TimedChange(at.timestamp(), oid, "put", {**fields, "order_id": oid, "status": s})
            for oid, at, s in changes
        ]
        write_lines(space, raw_lines(timed, stream))
        LocalCrawler(space).run()

    def export(at: datetime, *rows: tuple[str, str | None]) -> None:
        export_id = f"{int(at.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"
        writer = BaselineWriter(space, export_id)
        for order_id, status in rows:
            order = _order(order_id, created, status or "PLACED")
            writer.add(baseline_row(export_id, snapshot_time(at), order, deleted=status is None))
        writer.close()

    with DuckDBEngine(space) as engine:
        before = [(o, created, "PLACED") for o in ("lost", "later", "gone", "same-second", "late", "twice")]
        events(*before, ("same-second", export_at + timedelta(milliseconds=400), "SHIPPED"))
        compact(space, engine)
        export(
            export_at,
            ("lost", "PAID"),  # its PAID event never arrived: the export wins
            ("later", "PLACED"),  # changed after the export (below): the change wins
            ("gone", None),  # not in the export: deleted as of the export
            ("same-second", "PLACED"),  # an event in the export's own second wins
            ("late", "PAID"),  # its PAID event, from before the export, arrives late (below)
            ("twice", "PAID"),
            ("never-streamed", "DELIVERED"),
        )
        compact(space, engine)
        events(
            ("later", export_at + timedelta(seconds=50), "SHIPPED"),
            ("late", export_at - timedelta(seconds=50), "PAID"),
        )
        compact(space, engine)
        export(export_at + timedelta(minutes=5), ("twice", "CANCELLED"))  # a later export wins
        compact(space, engine)

        rows = latest(space, engine)
        assert {o: r["status"] for o, r in rows.items()} == {
            "lost": "PAID",
            "later": "SHIPPED",
            "same-second": "SHIPPED",
            "late": "PAID",
            "twice": "CANCELLED",
            "never-streamed": "DELIVERED",
        }
        assert rows["later"]["last_sequence_number"] is not None  # the event's row, not the snapshot's
        assert rows["lost"]["last_sequence_number"] is None
        assert rows["lost"]["last_event_time"] == snapshot_time(export_at)
        compact(space, engine, full=True)
        assert latest(space, engine) == rows, "--full differs from incremental"
