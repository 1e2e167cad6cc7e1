"""The SQL engines: DuckDB over the emulator with Glue as catalog, and Athena's plumbing.

Tables here are small and hand-made so that bytes can be checked exactly: the engine's bytes
scanned is what DuckDB's httpfs actually fetched, which for JSON is whole objects.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest

from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.catalog.glue import get_table, list_partitions, parquet_table_input, put_table
from sales_ops.dashboard import sketch
from sales_ops.query import (
    AthenaEngine,
    DuckDBEngine,
    MissingTableError,
    QueryError,
    ScanCutoffError,
    Sql,
    render,
    render_named,
)
from sales_ops.schema import LATEST_COLUMNS, SQL_RULES
from sales_ops.settings import RAW_PREFIX, Settings
from tests.harness import drop_bucket, own_space


@pytest.fixture(scope="module")
def space(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A bucket, Glue database and state dir of this module's own, with a small raw_orders."""
    settings = own_space(local_stack, tmp_path_factory.mktemp("eng"), "eng")
    for key, lines in OBJECTS.items():
        put(settings, key, lines)
    LocalCrawler(settings).run()
    yield settings
    drop_bucket(settings)


@pytest.fixture(scope="module")
def engine(space: Settings) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(space) as eng:
        yield eng


@pytest.fixture(scope="module")
def open_engine(space: Settings) -> Iterator[DuckDBEngine]:
    """As Athena in a workgroup that does not enforce its configuration: CTAS may name a location."""
    with DuckDBEngine(space, enforce_workgroup=False) as eng:
        yield eng


def event(order_id: str, seq: str, total: float, created: str = "2026-01-01T10:00:00.000Z") -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": "INSERT",
        "event_time": created[:19] + "Z",
        "sequence_number": seq,
        "is_deleted": False,
        "order_id": order_id,
        "quantity": 2,
        "unit_price": total / 2,
        "order_total": total,
        "status": "PAID",
        "created_at": created,
        # JSON text, as the handler writes it (docs/design.md §2.2)
        "extra": json.dumps({"coupon_code": "SAVE-10", "gift-wrap": True} if order_id.endswith("1") else {}),
    }


OBJECTS = {
    "dt=2026-01-01/hour=00/a": [
        event("o-1", "100000000000000000001", 10.5),
        event("o-2", "99999999999999999999", 4),
    ],
    "dt=2026-01-01/hour=01/b": [event("o-3", "100000000000000000003", 7.25)],
    "dt=2026-01-02/hour=00/c": [event("o-4", "100000000000000000004", 3, "2026-01-02T00:10:00.000Z")],
}


def put(settings: Settings, key: str, lines: list[dict]) -> int:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    settings.client("s3").put_object(Bucket=settings.bucket, Key=RAW_PREFIX + key, Body=body)
    return len(body)


def size(settings: Settings, key: str) -> int:
    return settings.client("s3").head_object(Bucket=settings.bucket, Key=RAW_PREFIX + key)["ContentLength"]


def test_partition_filters_prune_files_and_bytes_are_exact(space: Settings, engine: DuckDBEngine) -> None:
    db = space.database
    whole = engine.query(f"SELECT count(*) AS n FROM {db}.raw_orders")
    assert whole.rows == [(4,)]
    assert whole.bytes_scanned == sum(size(space, k) for k in OBJECTS)
    one = engine.query(f"SELECT count(*) FROM {db}.raw_orders WHERE dt = '2026-01-01' AND hour = '01'")
    assert one.rows == [(1,)] and one.bytes_scanned == size(space, "dt=2026-01-01/hour=01/b")
    none = engine.query(f"SELECT count(*) FROM {db}.raw_orders WHERE dt = '2099-01-01'")
    assert none.rows == [(0,)] and none.bytes_scanned == 0


def test_a_statement_reads_a_tables_catalog_and_files_once_however_often_it_names_it(
    space: Settings, engine: DuckDBEngine
) -> None:
    """As Athena plans a query once: three mentions of raw_orders, one GetTable, one GetPartitions
    and one listing (of its location, whatever the filter); the next statement reads them again
    (test_only_catalogued_partitions_are_visible shows it sees a new partition)."""
    calls: list[str] = []

    def record(model: object, **_: object) -> None:
        calls.append(model.name)  # type: ignore[attr-defined]

    for client in (engine.glue, engine.s3):
        client.meta.events.register("before-call", record)
    try:
        t = f"{space.database}.raw_orders"
        three = engine.query(
            f"SELECT (SELECT count(*) FROM {t}) + (SELECT count(*) FROM {t} WHERE dt = '2026-01-01') "
            f"+ (SELECT count(*) FROM {t})"
        )
        once = sorted(calls)
        calls.clear()
        engine.query(f"SELECT count(*) FROM {t}")
    finally:
        for client in (engine.glue, engine.s3):
            client.meta.events.unregister("before-call", record)
    assert (
        three.rows[0][0]
        == 4 + engine.query(f"SELECT count(*) FROM {t} WHERE dt = '2026-01-01'").rows[0][0] + 4
    )
    assert once.count("GetTable") == 1 and once.count("GetPartitions") == 1, once
    # One listing of the table's location, shared by the three reads (each keeps its partitions' files).
    assert once.count("ListObjectsV2") == 1, once
    assert sorted(calls) == ["GetPartitions", "GetTable", "ListObjectsV2"], "the next statement reads again"


def test_two_tables_at_one_location_are_listed_once_a_statement(
    space: Settings, open_engine: DuckDBEngine
) -> None:
    """orders_base and orders_tombstones share a location: a statement naming both lists it once
    (each table still keeps only the files under its own partitions); the next statement lists it
    again."""
    engine, db = open_engine, space.database
    location = space.s3_uri(f"curated/shared_{uuid.uuid4().hex[:6]}/")
    engine.execute(
        f"CREATE TABLE {db}.shared_a WITH (format = 'PARQUET', external_location = '{location}', "
        "partitioned_by = ARRAY['part']) AS SELECT x AS id, CAST(x % 2 AS VARCHAR) AS part "
        "FROM UNNEST(sequence(1, 10)) AS t(x)"
    )
    second = get_table(space, "shared_a")
    assert second is not None
    put_table(space, parquet_table_input("shared_b", [("id", "bigint")], location, [("part", "string")]))
    glue_b = get_table(space, "shared_b")
    b_only = [p for p in list_partitions(space, "shared_a") if p["Values"] == ["1"]]  # b sees part=1 only
    space.client("glue").batch_create_partition(
        DatabaseName=db,
        TableName="shared_b",
        PartitionInputList=[
            {"Values": p["Values"], "StorageDescriptor": p["StorageDescriptor"]} for p in b_only
        ],
    )
    assert glue_b is not None
    listed: list[str] = []

    def record(params: dict, **_: object) -> None:
        listed.append(params["Prefix"])

    engine.s3.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    try:
        both = engine.query(
            f"SELECT (SELECT count(*) FROM {db}.shared_a) * 100 + (SELECT count(*) FROM {db}.shared_b)"
        )
        first_statement = list(listed)
        engine.query(f"SELECT count(*) FROM {db}.shared_a")
    finally:
        engine.s3.meta.events.unregister("provide-client-params.s3.ListObjectsV2", record)
    assert both.rows == [(10 * 100 + 5,)]  # each table its own partitions' rows
    prefix = location.split("/", 3)[3]
    assert first_statement == [prefix], first_statement
    assert listed == [prefix, prefix], "the next statement lists again"


def test_path_names_the_file_and_selects_files(space: Settings, engine: DuckDBEngine) -> None:
    uri = f"s3://{space.bucket}/{RAW_PREFIX}dt=2026-01-01/hour=00/a"
    result = engine.query(
        f'SELECT order_id, "$path" AS path FROM {space.database}.raw_orders WHERE "$path" IN (\'{uri}\') '
        "ORDER BY order_id"
    )
    assert result.rows == [("o-1", uri), ("o-2", uri)]
    assert result.bytes_scanned == size(space, "dt=2026-01-01/hour=00/a")


def test_only_catalogued_partitions_are_visible(space: Settings, engine: DuckDBEngine) -> None:
    put(space, "dt=2026-01-03/hour=00/d", [event("o-5", "100000000000000000005", 1)])
    query = f"SELECT count(*) FROM {space.database}.raw_orders WHERE dt = '2026-01-03'"
    assert engine.query(query).rows == [(0,)]  # as on Athena: not in the catalog yet
    LocalCrawler(space).run()
    assert engine.query(query).rows == [(1,)]


def test_sequence_numbers_of_40_digits_order_as_numbers(engine: DuckDBEngine) -> None:
    """Defect 10: DECIMAL(38,0) overflows on a 39- or 40-digit sequence number; the padded string
    (the one ordering the project's SQL uses) orders them all as numbers."""
    numbers = ["9" * 21, "1" + "0" * 37, "9" * 38, "1" + "0" * 38, "4" * 40, "9" * 40]
    values = ", ".join(f"('{n}')" for n in reversed(numbers))
    ordered = engine.query(
        f"SELECT sequence_number FROM (VALUES {values}) AS t(sequence_number) "
        f"ORDER BY {SQL_RULES['sequence_order']}"
    )
    assert [r[0] for r in ordered.rows] == numbers
    with pytest.raises(QueryError):
        engine.query(f"SELECT CAST('{'9' * 40}' AS DECIMAL(38, 0))")
    assert dict((c.name, c.latest_type) for c in LATEST_COLUMNS)["last_sequence_number"] == "string"


def test_trino_sql_runs_with_its_own_functions_and_types(space: Settings, engine: DuckDBEngine) -> None:
    result = engine.query(
        f"""
        SELECT
            max_by(order_id, CAST(sequence_number AS DECIMAL(38, 0))) AS latest,
            count_if(json_extract_scalar(extra, '$.coupon_code') IS NOT NULL) AS with_coupon,
            max(json_extract_scalar(extra, '$["gift-wrap"]')) AS gift_wrap,
            approx_distinct(order_id) AS orders,
            CAST(date_trunc('hour', min(from_iso8601_timestamp(created_at))) AS TIMESTAMP) AS first_hour,
            date_add('day', 1, DATE '2026-01-31') AS next_day,
            sum(CAST(order_total AS DECIMAL(12, 2))) AS total,
            json_extract_scalar('{{"a": "b"}}', '$.a') AS extracted
        FROM {space.database}.raw_orders
        WHERE dt <= '2026-01-02'
        """
    ).as_dicts()[0]
    # 100000000000000000004 > 99999999999999999999: compared as numbers, past BIGINT
    assert result["latest"] == "o-4"
    assert result["with_coupon"] == 1 and result["orders"] == 4 and result["gift_wrap"] == "true"
    assert str(result["first_hour"]) == "2026-01-01 10:00:00"
    assert str(result["next_day"]).startswith("2026-02-01")
    assert result["total"] == Decimal("24.75")
    assert result["extracted"] == "b"


def test_ctas_writes_parquet_registers_table_and_partitions(
    space: Settings, open_engine: DuckDBEngine
) -> None:
    engine = open_engine
    db = space.database
    location = space.s3_uri(f"curated/ctas_{uuid.uuid4().hex[:6]}/")
    engine.execute(
        f"""
        CREATE TABLE {db}.wide
        WITH (format = 'PARQUET', external_location = '{location}', partitioned_by = ARRAY['bucket'])
        AS SELECT
            x AS id,
            CAST(x AS DECIMAL(12, 2)) * 2 AS amount,
            sum(x) OVER () AS total,
            to_hex(md5(to_utf8(CAST(x AS VARCHAR)))) || to_hex(md5(to_utf8(CAST(-x AS VARCHAR)))) AS padding,
            CAST(x % 3 AS VARCHAR) AS bucket
        FROM UNNEST(sequence(1, 20000)) AS t(x)
        """
    )
    table = get_table(space, "wide")
    assert table["StorageDescriptor"]["Location"] == location
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns.keys() == {"id", "amount", "total", "padding"}  # partition column last, apart
    assert columns["id"] == columns["total"] == "bigint" and columns["padding"] == "string"
    assert columns["amount"].startswith("decimal(") and columns["amount"].endswith(",2)")
    assert [p["Values"] for p in sorted(list_partitions(space, "wide"), key=lambda p: p["Values"])] == [
        ["0"],
        ["1"],
        ["2"],
    ]
    everything = engine.query(f"SELECT * FROM {db}.wide")
    narrow = engine.query(f"SELECT sum(id) FROM {db}.wide WHERE bucket = '1'")
    assert narrow.rows == [(sum(x for x in range(1, 20001) if x % 3 == 1),)]
    # One partition of three, and only the id column's pages: a small share of the files.
    assert 0 < narrow.bytes_scanned < everything.bytes_scanned / 4

    with pytest.raises(QueryError, match="HIVE_PATH_ALREADY_EXISTS"):
        engine.execute(f"CREATE TABLE {db}.wide2 WITH (external_location = '{location}') AS SELECT 1 AS a")
    with pytest.raises(QueryError, match="already exists"):
        engine.execute(f"CREATE TABLE {db}.wide AS SELECT 1 AS a")


def test_insert_into_a_partitioned_table_adds_its_partitions(
    space: Settings, open_engine: DuckDBEngine
) -> None:
    engine = open_engine
    db = space.database
    location = space.s3_uri(f"curated/ins_{uuid.uuid4().hex[:6]}/")
    engine.execute(
        f"CREATE TABLE {db}.events WITH (external_location = '{location}', partitioned_by = ARRAY['day']) "
        "AS SELECT 'a' AS name, 1 AS n, '2026-01-01' AS day"
    )
    # A partition someone set a parameter on: an INSERT adding files to it leaves its entry alone.
    glue_client = space.client("glue")
    (first,) = list_partitions(space, "events")
    glue_client.update_partition(
        DatabaseName=db,
        TableName="events",
        PartitionValueList=first["Values"],
        PartitionInput={
            "Values": first["Values"],
            "StorageDescriptor": first["StorageDescriptor"],
            "Parameters": {"marked": "yes"},
        },
    )
    calls: list[str] = []

    def record(model: object, **_: object) -> None:
        calls.append(model.name)  # type: ignore[attr-defined]

    engine.glue.meta.events.register("before-call", record)
    try:
        inserted = engine.execute(
            f"INSERT INTO {db}.events SELECT name, n, day "
            "FROM (VALUES ('b', 2, '2026-01-01'), ('c', 3, '2026-01-02')) AS t(name, n, day)"
        )
    finally:
        engine.glue.meta.events.unregister("before-call", record)
    assert inserted.rows == [(2,)] and inserted.bytes_written > 0
    # The write asks for the partitions it wrote, not for every partition of its target.
    assert "GetPartitions" not in calls and "BatchGetPartition" in calls, calls
    by_day = {p["Values"][0]: p for p in list_partitions(space, "events")}
    assert sorted(by_day) == ["2026-01-01", "2026-01-02"]
    assert by_day["2026-01-01"]["Parameters"] == {"marked": "yes"}, "an existing partition was repointed"
    assert engine.query(f"SELECT day, sum(n) FROM {db}.events GROUP BY day ORDER BY day").rows == [
        ("2026-01-01", 3),
        ("2026-01-02", 3),
    ]


def test_a_statement_past_the_scan_cutoff_is_cancelled_and_writes_nothing(
    space: Settings, open_engine: DuckDBEngine
) -> None:
    """As the workgroup's BytesScannedCutoffPerQuery: past it a SELECT fails, and a CTAS or INSERT
    leaves no table, partition or file behind."""
    db = space.database
    whole = open_engine.query(f"SELECT count(*) FROM {db}.raw_orders")
    narrow_sql = f"SELECT count(*) FROM {db}.raw_orders WHERE dt = '2026-01-01' AND hour = '01'"
    narrow = open_engine.query(narrow_sql)
    assert 0 < narrow.bytes_scanned < whole.bytes_scanned
    with DuckDBEngine(
        replace(space, scan_cutoff_bytes=whole.bytes_scanned - 1), enforce_workgroup=False
    ) as capped:
        assert capped.query(narrow_sql).rows == narrow.rows  # under the cutoff: runs as before
        with pytest.raises(ScanCutoffError, match="BytesScannedCutoffPerQuery") as caught:
            capped.query(f"SELECT count(*) FROM {db}.raw_orders")
        assert (caught.value.scanned, caught.value.cutoff) == (whole.bytes_scanned, whole.bytes_scanned - 1)

        name = f"cut_{uuid.uuid4().hex[:6]}"
        location = space.s3_uri(f"scratch/{name}/")
        ctas = f"CREATE TABLE {db}.{name} WITH (external_location = '{location}', "
        ctas += "partitioned_by = ARRAY['dt']) AS "
        with pytest.raises(ScanCutoffError):
            capped.execute(ctas + f"SELECT order_id, dt FROM {db}.raw_orders")
        assert get_table(space, name) is None
        assert not objects_under(space, location)

        capped.execute(ctas + "SELECT 'x' AS order_id, '2026-01-01' AS dt")  # reads nothing: runs
        files = objects_under(space, location)
        with pytest.raises(ScanCutoffError):
            capped.execute(f"INSERT INTO {db}.{name} SELECT order_id, dt FROM {db}.raw_orders")
        assert [p["Values"] for p in list_partitions(space, name)] == [["2026-01-01"]]
        assert objects_under(space, location) == files
        assert capped.query(f"SELECT order_id FROM {db}.{name}").rows == [("x",)]


def objects_under(settings: Settings, location: str) -> list[str]:
    prefix = location.removeprefix(f"s3://{settings.bucket}/")
    listed = settings.client("s3").list_objects_v2(Bucket=settings.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_ctas_external_location_is_refused_under_the_enforced_workgroup(
    space: Settings, engine: DuckDBEngine
) -> None:
    location = space.s3_uri(f"curated/enf_{uuid.uuid4().hex[:6]}/")
    with pytest.raises(QueryError, match=r"enforces its configuration.*external_location"):
        engine.execute(
            f"CREATE TABLE {space.database}.enforced WITH (external_location = '{location}') AS SELECT 1 AS a"
        )
    assert get_table(space, "enforced") is None
    # Without it the table goes under the workgroup's results location, as on Athena.
    engine.execute(f"CREATE TABLE {space.database}.enforced AS SELECT 1 AS a")
    assert "/athena-results/tables/" in get_table(space, "enforced")["StorageDescriptor"]["Location"]


def test_one_statement_writes_at_most_100_partitions(space: Settings, engine: DuckDBEngine) -> None:
    db = space.database
    location = space.s3_uri(f"curated/parts_{uuid.uuid4().hex[:6]}/")
    put_table(space, parquet_table_input("parts", [("n", "bigint")], location, [("p", "string")]))
    values = "SELECT x AS n, CAST(x AS VARCHAR) AS p FROM UNNEST(sequence(1, {})) AS t(x)"
    with pytest.raises(QueryError, match="HIVE_TOO_MANY_OPEN_PARTITIONS"):
        engine.execute(f"INSERT INTO {db}.parts " + values.format(101))
    assert list_partitions(space, "parts") == []  # nothing registered, and the files are gone
    bucket, prefix = location[5:].split("/", 1)
    assert space.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    engine.execute(f"INSERT INTO {db}.parts " + values.format(100))
    assert len(list_partitions(space, "parts")) == 100


DUCKDB_CALLS = [
    "strftime(now(), '%Y')",
    "median(1)",
    "arg_max(1, 2)",
    "len('ab')",
    "read_parquet('s3://elsewhere/x.parquet')",
    "string_agg('a', ',')",
]


@pytest.mark.parametrize("call", DUCKDB_CALLS)
def test_functions_athena_lacks_are_refused(engine: DuckDBEngine, call: str) -> None:
    with pytest.raises(QueryError, match=r"refused: it is DuckDB's, and Athena .* does not have it"):
        engine.query(f"SELECT {call}")


def test_a_function_name_inside_a_string_is_not_a_call(engine: DuckDBEngine) -> None:
    assert engine.query("SELECT 'strftime(x)' AS s, max_by(1, 2) AS m").rows == [("strftime(x)", 1)]


def test_errors_carry_the_engine_message(space: Settings, engine: DuckDBEngine) -> None:
    with pytest.raises(QueryError, match=r"syntax error at line 1, column \d+"):
        engine.query("SELEC order_id FROM raw_orders")
    with pytest.raises(QueryError) as column:
        engine.query("SELECT no_such_column FROM raw_orders")
    assert "no_such_column" in str(column.value) and "Binder Error" in str(column.value)
    assert "__raw_orders" not in str(column.value)  # the message names the table, not our view
    with pytest.raises(MissingTableError) as missing:
        engine.query("SELECT * FROM orders_nowhere o JOIN raw_orders r ON o.order_id = r.order_id")
    assert missing.value.table == f"{space.database}.orders_nowhere"
    assert "orders_nowhere" in str(missing.value)
    with pytest.raises(MissingTableError, match=r"no_such_db\.raw_orders"):
        engine.query("SELECT * FROM no_such_db.raw_orders")
    with pytest.raises(QueryError, match="format_datetime"):
        engine.query("SELECT format_datetime(current_timestamp, 'yyyy') FROM raw_orders")
    with pytest.raises(QueryError, match="SHOW"):
        engine.query("SHOW TABLES")


def test_named_queries_and_parameters(space: Settings, engine: DuckDBEngine) -> None:
    with pytest.raises(QueryError, match="total_sales_by_product"):
        engine.named("no_such_query")
    with pytest.raises(QueryError, match="order_ids"):
        engine.named("check_rejected")
    sql = render_named("unique_products", "sales_ops")
    assert "FROM sales_ops.orders_live" in sql
    assert render(
        "SELECT {a}, {b}, {c} WHERE x IN ({d}) {e}", a="O'Brien", b=2, c=None, d=[], e=Sql("LIMIT 1")
    ) == ("SELECT 'O''Brien', 2, NULL WHERE x IN (NULL) LIMIT 1")
    assert render("x IN ({v})", v=["a", "b"]) == "x IN ('a', 'b')"


def test_athena_engine_uses_the_workgroup_and_results_location(space: Settings) -> None:
    """On the emulator's Athena API (moto answers with rows set through its own API)."""
    athena = space.client("athena")
    workgroup = f"wg-{uuid.uuid4().hex[:6]}"
    athena.create_work_group(Name=workgroup)
    rows = [{"Data": [{"VarCharValue": "product_count"}]}, {"Data": [{"VarCharValue": "60"}]}]
    column = {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": "product_count",
        "Label": "product_count",
        "Type": "bigint",
        "Precision": 19,
        "Scale": 0,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
    }
    _set_athena_result(space, rows, [column])
    engine = AthenaEngine(replace(space, workgroup=workgroup), poll_interval=0.05)
    result = engine.named("unique_products")
    assert result.engine == "athena" and result.columns == ["product_count"] and result.rows == [(60,)]
    (query_id,) = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert f"FROM {space.database}.orders_live" in execution["Query"]
    assert execution["QueryExecutionContext"]["Database"] == space.database
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(space.s3_uri("athena-results/"))


def test_athena_errors_name_the_missing_table_and_the_scan_cutoff() -> None:
    """pyathena raises with the query's StateChangeReason; the engine words it as the project's."""
    from sales_ops.query.athena import _athena_error

    cancelled = _athena_error("Bytes scanned limit was exceeded", "SELECT 1", 10 * 1024**2)
    assert isinstance(cancelled, ScanCutoffError) and "10,485,760 bytes" in str(cancelled)
    missing = _athena_error("line 1:15: Table 'awsdatacatalog.db.t' does not exist", "SELECT 1", 1)
    assert isinstance(missing, MissingTableError) and missing.table == "db.t"
    other = _athena_error("SYNTAX_ERROR: x", "SELECT 1", 1)
    assert type(other) is QueryError and str(other) == "SYNTAX_ERROR: x"


def _set_athena_result(settings: Settings, rows: list[dict], columns: list[dict]) -> None:
    body = json.dumps(
        {"region": settings.region, "results": [{"rows": rows, "column_info": columns}]}
    ).encode()
    request = urllib.request.Request(
        f"{settings.endpoint_url}/moto-api/static/athena/query-results",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).close()


def test_path_is_not_listed_without_a_filter(space: Settings, engine: DuckDBEngine) -> None:
    """A table's rows are the same whether "$path" is asked for or not."""
    plain = engine.query(f"SELECT count(*) FROM {space.database}.raw_orders").rows
    with_path = engine.query(
        f'SELECT count(DISTINCT "$path") AS files, count(*) FROM {space.database}.raw_orders'
    )
    assert with_path.rows[0][1] == plain[0][0] and with_path.rows[0][0] >= len(OBJECTS)


def test_projected_partitions_and_nested_views(local_stack: Settings, tmp_path) -> None:
    """Partition projection replaces Glue partitions; a Glue view (Athena's shape) is inlined."""
    from sales_ops.catalog import glue

    settings = own_space(local_stack, tmp_path, "prj")
    try:
        glue.ensure_raw_table(settings, settings.s3_uri(RAW_PREFIX))
        keys = {
            "dt=2026-11-30/hour=23/a": [event("p-1", "1", 1)],
            "dt=2026-12-01/hour=00/b": [event("p-2", "2", 2), event("p-3", "3", 3)],
            "dt=2026-12-01/hour=24/c": [event("p-4", "4", 4)],  # no such hour: not projected
            "dt=2026-12-1/hour=00/d": [event("p-5", "5", 5)],  # not the date format
            "dt=2019-12-31/hour=00/e": [event("p-6", "6", 6)],  # before the projected range
            "dt=2026-12-01/hour=00/_tmp": [event("p-7", "7", 7)],  # hidden
        }
        for key, lines in keys.items():
            put(settings, key, lines)
        assert list_partitions(settings, "raw_orders") == [], "nothing registered: no crawl"
        with DuckDBEngine(settings) as eng:
            db = settings.database
            rows = eng.query(f"SELECT order_id FROM {db}.raw_orders ORDER BY 1").rows
            assert rows == [("p-1",), ("p-2",), ("p-3",)]
            later = eng.query(f"SELECT count(*) FROM {db}.raw_orders WHERE dt > '2026-11-30' OR dt = 'x'")
            assert later.rows == [(2,)]
            # A "$path" bound starts the listing there, the named file included (StartAfter excludes).
            first = f"s3://{settings.bucket}/{RAW_PREFIX}dt=2026-11-30/hour=23/a"
            where = f"(dt = '2026-11-30' AND \"$path\" IN ('{first}')) AND order_id IS NOT NULL"
            assert eng.query(f"SELECT order_id FROM {db}.raw_orders WHERE {where}").rows == [("p-1",)]
            inner = "SELECT order_id, order_total FROM raw_orders WHERE dt = '2026-12-01'"
            glue.put_table(settings, glue.view_input("v_inner", inner, [("order_id", "varchar")], db))
            outer = "SELECT count(*) AS n, sum(order_total) AS total FROM v_inner"
            glue.put_table(settings, glue.view_input("v_outer", outer, [("n", "bigint")], db))
            assert glue.view_sql(glue.get_table(settings, "v_outer")) == outer
            assert eng.query(f"SELECT n, total FROM {db}.v_outer").rows == [(2, 5.0)]
            joined = eng.query(
                f"SELECT count(*) FROM {db}.v_inner AS a JOIN {db}.raw_orders AS r ON a.order_id = r.order_id"
            )
            assert joined.rows == [(2,)]
            with pytest.raises(QueryError, match="is a view"):
                eng.query(f"INSERT INTO {db}.v_inner SELECT order_id, order_total FROM {db}.raw_orders")
            glue.put_table(settings, glue.view_input("v_loop", f"SELECT * FROM {db}.v_loop", [], db))
            with pytest.raises(QueryError, match="nested more than"):
                eng.query(f"SELECT * FROM {db}.v_loop")
    finally:
        drop_bucket(settings)


def test_the_customer_sketch_is_the_same_in_sql_and_python_and_merges_over_slices(
    engine: DuckDBEngine,
) -> None:
    """The dashboard's distinct customers read a slice at a time (sales_ops/dashboard/sketch.py):
    the SQL rules give Python's register and rank, and the sketches of four slices sharing
    customers merge into a count within the sketch's error of the exact one."""
    # 15,000 customers in 20,000 rows; four slices of 5,000 rows, two of them sharing 5,000 customers.
    customers = (
        "SELECT 'cust-' || CAST(x % 15000 AS varchar) AS customer_id, x "
        "FROM UNNEST(sequence(0, 19999)) AS t(x)"
    )
    slice_of = "CAST(floor(x / 1000) AS integer) % 4"
    register, rank = SQL_RULES["customer_register"], SQL_RULES["customer_rank"]
    some = engine.query(f"SELECT customer_id, {register}, {rank} FROM ({customers}) WHERE x < 50").rows
    assert [(r, k) for _, r, k in some] == [(sketch.register_of(c), sketch.rank_of(c)) for c, _, _ in some]
    by_slice = f"SELECT {register}, max({rank}) FROM ({customers}) WHERE {slice_of} = {{}} GROUP BY 1"
    slices = [dict(engine.query(by_slice.format(i)).rows) for i in range(4)]
    merged = sketch.estimate(sketch.merge(slices))
    assert abs(merged - 15000) / 15000 < 0.05, merged
    assert sum(sketch.estimate(s) for s in slices) > 19000  # what adding the slices' counts up would say
    assert sketch.estimate({}) == 0
