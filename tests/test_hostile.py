"""Adversarial probes: what a hostile web page, a careless operator or odd data can send.

Each test drives the real part (the emulator process, the dashboard app, DuckDB, the CLI) and
asserts it refuses clearly, or does the right thing, with no traceback.
"""

from __future__ import annotations

import http.client
import json

import pytest

pytestmark = pytest.mark.slow

EVIL = "http://evil.example"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)


def _raw(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict, bytes]:
    """One HTTP request exactly as given (http.client sets Host only if we do not)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _scan(port: int, **extra: str) -> tuple[int, dict, bytes]:
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.Scan",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": SIGV4,
        **extra,
    }
    return _raw(port, "POST", "/", headers, json.dumps({"TableName": "orders"}).encode())


# --- the embedded AWS --------------------------------------------------------------------------
def test_emulator_still_serves_sdk_requests(local_stack):
    status, _, body = _scan(local_stack.port)
    assert status == 200 and b"Items" in body


def test_emulator_refuses_a_cross_origin_scan(local_stack):
    status, headers, body = _scan(local_stack.port, Origin=EVIL)
    assert status == 403
    assert b"Items" not in body and b"cross-origin" in body
    assert "access-control-allow-origin" not in headers


def test_emulator_refuses_a_cross_site_request_without_origin(local_stack):
    status, _, body = _scan(local_stack.port, Referer="http://evil.example/page.html")
    assert status == 403 and b"Items" not in body
    status, _, body = _scan(local_stack.port, **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and b"Items" not in body


def test_emulator_preflight_from_a_foreign_origin_echoes_nothing(local_stack):
    status, headers, _ = _raw(
        local_stack.port,
        "OPTIONS",
        "/",
        {
            "Host": f"127.0.0.1:{local_stack.port}",
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-amz-target,authorization,content-type",
        },
    )
    assert status == 403
    assert not [h for h in headers if h.startswith("access-control-allow")]


@pytest.mark.parametrize("host", ["evil.example:4566", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_emulator_refuses_a_foreign_host_header(local_stack, host):
    status, _, body = _scan(local_stack.port, Host=host)
    assert status == 403 and b"Items" not in body


@pytest.mark.parametrize("origin", [None, EVIL])
def test_emulator_refuses_a_form_post_to_the_bucket(space, origin):
    boundary = "b0undary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nraw/orders/evil.json\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nnot json\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    headers = {
        "Host": f"127.0.0.1:{space.port}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    if origin:
        headers["Origin"] = origin
    status, _, _ = _raw(space.port, "POST", f"/{space.bucket}", headers, form)
    assert status == 403
    listed = space.client("s3").list_objects_v2(Bucket=space.bucket, Prefix="raw/")
    assert listed.get("KeyCount", 0) == 0


# --- the dashboard ---------------------------------------------------------------------------
@pytest.fixture()
def dashboard(local_stack):
    from starlette.testclient import TestClient

    from sales_ops.dashboard.app import create_app

    with TestClient(create_app(local_stack), base_url="http://127.0.0.1:8050") as client:
        yield client


@pytest.mark.parametrize("host", ["evil.example:8711", "127.0.0.1.nip.io:8050", "attacker.localhost.evil"])
@pytest.mark.parametrize("path", ["/", "/api/metrics", "/static/dashboard.js"])
def test_dashboard_refuses_a_foreign_host_header(dashboard, host, path):
    response = dashboard.get(path, headers={"Host": host})
    assert response.status_code == 403
    assert "Host" in response.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8050", "localhost:8050", "[::1]:8050", "localhost"])
def test_dashboard_serves_loopback_host_names(dashboard, host):
    assert dashboard.get("/", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Origin": EVIL}, {"Referer": EVIL + "/x.html"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
)
def test_dashboard_api_refuses_cross_site_calls(dashboard, headers):
    response = dashboard.get("/api/metrics", headers=headers)
    assert response.status_code == 403
    assert "panels" not in response.json()


def test_dashboard_api_answers_its_own_page(dashboard):
    response = dashboard.get("/api/metrics", headers={"Origin": "http://127.0.0.1:8050"})
    assert response.status_code == 200 and "panels" in response.json()


def test_dashboard_fails_fast_when_the_emulator_is_down(tmp_path):
    import time

    from starlette.testclient import TestClient

    from sales_ops.dashboard.app import create_app
    from tests.conftest import free_port, stack_settings

    down = stack_settings(tmp_path, free_port())  # nothing listens there
    with TestClient(create_app(down), base_url="http://127.0.0.1:8050") as client:
        started = time.monotonic()
        response = client.get("/api/metrics")
        elapsed = time.monotonic() - started
        assert client.get("/").status_code == 200
    assert response.status_code == 503
    assert "embedded AWS not running" in response.json()["error"]
    assert "Traceback" not in response.text and "Error:" not in response.text
    assert elapsed < 3, f"took {elapsed:.1f}s"


# --- user SQL on the local engine --------------------------------------------------------------
@pytest.fixture(scope="module")
def sql_space(local_stack, tmp_path_factory):
    """One bucket and database for the SQL probes (an engine takes seconds to open here)."""
    from tests.conftest import drop_bucket, own_space

    settings = own_space(local_stack, tmp_path_factory.mktemp("sql"), "sql")
    yield settings
    drop_bucket(settings)


@pytest.fixture(scope="module")
def engine(sql_space):
    from sales_ops.query import DuckDBEngine

    space = sql_space
    space.client("s3").put_object(Bucket=space.bucket, Key="notes/hello.txt", Body=b"hello from the bucket")
    with DuckDBEngine(space) as eng:
        yield eng


def _refused(engine, sql: str, *words: str) -> str:
    from sales_ops.query import QueryError

    with pytest.raises(QueryError) as refused:
        engine.query(sql)
    message = str(refused.value)
    for word in words:
        assert word in message, message
    return message


def test_user_sql_reads_no_local_file(engine, sql_space, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("k,v\npassword,hunter2\n")
    state = sql_space.state_dir
    for sql in [
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_blob('{secret}')",
        f"SELECT * FROM read_json_auto('{state}/**/*.json')",
        f"SELECT * FROM read_text('file://{secret}')",
        f"SELECT * FROM read_text('{state}/duckdb/spill/../../../{secret.name}')",
        "SELECT * FROM read_text('/etc/passwd')",
    ]:
        message = _refused(engine, sql, "refused")
        assert "hunter2" not in message


def test_user_sql_fetches_no_url(engine, sql_space):
    for sql in [
        f"SELECT * FROM read_text('http://127.0.0.1:{sql_space.port}/{sql_space.bucket}/notes/hello.txt')",
        "SELECT * FROM read_text('https://example.com/')",
        "SELECT * FROM read_csv('http://169.254.169.254/latest/meta-data/')",
        "SELECT * FROM read_text('s3://another-bucket/x')",
    ]:
        _refused(engine, sql, "refused")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("ATTACH '/tmp/x.duckdb' AS x", "ATTACH"),
        ("COPY (SELECT 1) TO '/tmp/hostile.parquet'", "COPY"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA enable_external_access", "PRAGMA"),
    ],
)
def test_statements_outside_athena_are_refused_by_their_name(engine, sql, kind):
    _refused(engine, sql, f"does not run {kind} statements")


def test_the_bucket_itself_is_still_readable(engine, sql_space):
    rows = engine.query(f"SELECT content FROM read_text('{sql_space.s3_uri('notes/hello.txt')}')").rows
    assert rows == [("hello from the bucket",)]


def test_insert_into_a_table_located_on_local_disk_is_refused(engine, sql_space, tmp_path):
    from sales_ops.catalog import glue

    target = tmp_path / "exfil"
    target.mkdir()
    glue.put_table(sql_space, glue.parquet_table_input("local_dir", [("a", "int")], f"file://{target}/", []))
    _refused(engine, "INSERT INTO local_dir SELECT 1", "writes go to", sql_space.s3_uri())
    glue.put_table(sql_space, glue.parquet_table_input("bare_dir", [("a", "int")], f"{target}/", []))
    _refused(engine, "INSERT INTO bare_dir SELECT 1", "writes go to")
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("zone", ["raw/orders/dt=2026-01-01/hour=00/", "curated/orders_latest/", "errors/x/"])
def test_user_ctas_cannot_write_into_the_managed_zones(engine, sql_space, zone):
    sql = f"CREATE TABLE evil WITH (external_location = '{sql_space.s3_uri(zone)}') AS SELECT 1 AS a"
    _refused(engine, sql, "managed by the pipeline")
    sneaky = sql_space.s3_uri("athena-results/../" + zone)
    _refused(engine, f"CREATE TABLE evil WITH (external_location = '{sneaky}') AS SELECT 1 AS a", "..")
    listed = sql_space.client("s3").list_objects_v2(Bucket=sql_space.bucket, Prefix=zone.split("/")[0])
    assert listed.get("KeyCount", 0) == 0
    from sales_ops.catalog import glue

    assert glue.get_table(sql_space, "evil") is None


def test_user_insert_into_a_curated_table_is_refused_but_the_pipeline_writes(engine, sql_space):
    location = sql_space.s3_uri("curated/mine/")
    engine.execute(f"CREATE TABLE mine WITH (external_location = '{location}') AS SELECT 1 AS a")
    _refused(engine, "INSERT INTO mine SELECT 2", "managed by the pipeline")
    _refused(engine, "DROP TABLE mine", "managed by the pipeline")
    engine.execute("INSERT INTO mine SELECT 3")  # the project's own path
    assert sorted(engine.query("SELECT a FROM mine").rows) == [(1,), (3,)]


def test_drop_table_drops_a_users_table(engine, sql_space):
    from sales_ops.catalog import glue
    from sales_ops.query import MissingTableError

    engine.query("CREATE TABLE scratch AS SELECT 1 AS a")  # lands under athena-results/
    assert glue.get_table(sql_space, "scratch") is not None
    engine.query("DROP TABLE scratch")
    assert glue.get_table(sql_space, "scratch") is None
    with pytest.raises(MissingTableError):
        engine.query("DROP TABLE scratch")
    engine.query("DROP TABLE IF EXISTS scratch")


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("SELECT 1; SELECT 2", ["2 statements", "one statement"]),
        ("CREATE TEMP TABLE t AS SELECT 1", ["temporary"]),
        ("SELECT " + "(" * 3000 + "1" + ")" * 3000, ["nested too deeply"]),
        ("SHOW TABLES", ["sales-ops tables"]),
        ("DESCRIBE orders_latest", ["sales-ops describe"]),
    ],
)
def test_odd_statements_get_a_clear_refusal(engine, sql, words):
    _refused(engine, sql, *words)


def test_a_trailing_semicolon_is_fine(engine):
    assert engine.query("SELECT 42 AS x;").rows == [(42,)]
