"""Adversarial probes: what a hostile web page, a careless operator or odd data can send.

Each test drives the real part (the emulator process, the dashboard app, DuckDB, the CLI) and
asserts it refuses clearly, or does the right thing, with no traceback. The CLI runs in this process
(click's runner, tests/harness.py: run_cli) except where only a fresh process shows it: start-up
time, Ctrl-C, and the state dir anchored when the settings are imported.
"""

from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path

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
    from tests.harness import free_port, stack_settings

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
    from tests.harness import drop_bucket, own_space

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
    from sales_ops.catalog import glue

    location = sql_space.s3_uri("curated/mine/")
    # Registered at its location and filled by INSERT, as the rollups are (an enforced workgroup
    # refuses CTAS with external_location).
    glue.put_table(sql_space, glue.parquet_table_input("mine", [("a", "int")], location))
    engine.execute("INSERT INTO mine SELECT 1")
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


# --- the CLI -----------------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None):
    """`sales-ops ARGS` in this process (tests/harness.py: run_cli): what the CLI says and its exit
    code, as a process reports them; a traceback fails the test."""
    import os

    from tests.harness import run_cli

    return run_cli(*args, env={**(env or os.environ), "COLUMNS": "200"})


def _cli_process(*args: str, env: dict[str, str], timeout: float = 120):
    """`python -m sales_ops.cli ARGS` as a process: for what only a fresh process shows."""
    import subprocess
    import sys

    env = {**env, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def cli_env(local_stack):
    from tests.harness import stack_env

    return stack_env(local_stack)


def _no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def test_markup_emoji_and_escapes_in_data_are_printed_as_data(cli_env):
    sql = "SELECT '[/]' AS a, '[red]r[/red]' AS b, ':x: :smile:' AS c, chr(27) || '[31mred' || chr(7) AS d"
    result = _cli("query", sql, env=cli_env)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[/]" in out and "[red]r[/red]" in out and ":x: :smile:" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31mred\\x07" in out


def test_json_output_covers_every_type_and_stays_valid(cli_env):
    sql = (
        "SELECT ARRAY[1, 2] AS arr, (SELECT array_agg(x) FROM UNNEST(ARRAY['a', 'b']) AS t(x)) AS agg, "
        "CAST('6f1c2d3e-0000-4000-8000-000000000001' AS UUID) AS id, TIME '10:11:12' AS t, "
        "INTERVAL '2' DAY AS span, CAST('NaN' AS DOUBLE) AS n, CAST('Infinity' AS DOUBLE) AS inf, "
        "CAST('-Infinity' AS DOUBLE) AS ninf, "
        "CAST(14.34 AS DECIMAL(10, 2)) AS price, 1 AS x, 2 AS x, MAP(ARRAY['k'], ARRAY[1]) AS m"
    )
    result = _cli("query", sql, "--format", "json", env=cli_env)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr

    def no_constants(name: str) -> None:
        raise AssertionError(f"invalid JSON constant {name}")

    (row,) = json.loads(result.stdout, parse_constant=no_constants)
    assert row["arr"] == [1, 2] and sorted(row["agg"]) == ["a", "b"]
    assert row["id"] == "6f1c2d3e-0000-4000-8000-000000000001"
    assert row["t"] == "10:11:12" and row["span"] == "P2DT0H0M0S"
    assert (row["n"], row["inf"], row["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert row["price"] == 14.34 and row["x"] == 1 and row["x_2"] == 2
    assert row["m"] == {"k": 1}


def test_csv_output_has_no_python_reprs(cli_env):
    sql = (
        "SELECT ARRAY[CAST(14.34 AS DECIMAL(10, 2))] AS prices, CAST(NULL AS VARCHAR) AS nothing, 'x,y' AS s"
    )
    result = _cli("query", sql, "--format", "csv", env=cli_env)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "prices,nothing,s"
    assert lines[1] == '[14.34],,"x,y"'
    assert "Decimal(" not in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--param", "k"], ["--param wants NAME=VALUE"]),
        (["--param", "database=foo"], ["takes no parameter database"]),
        (["--param", "nope=1"], ["takes no parameter nope"]),
    ],
)
def test_named_query_parameters_are_checked(cli_env, args, words):
    result = _cli("query", "--named", "top_customers", *args, env=cli_env)
    _no_traceback(result)
    assert result.returncode in (1, 2)
    for word in words:
        assert word in result.stderr


def test_people_cannot_drop_a_pipeline_table_from_the_cli(cli_env, local_stack):
    import uuid as uuid_module

    from sales_ops.catalog import glue

    name = f"hostile_{uuid_module.uuid4().hex[:6]}"
    location = local_stack.s3_uri(f"curated/{name}/")
    glue.put_table(local_stack, glue.parquet_table_input(name, [("a", "int")], location, []))
    try:
        result = _cli("query", f"DROP TABLE {name}", env=cli_env)
        _no_traceback(result)
        assert result.returncode == 1 and "managed by the pipeline" in result.stderr
        assert glue.get_table(local_stack, name) is not None
    finally:
        glue.delete_table(local_stack, name)


def test_tables_and_describe(cli_env, local_stack):
    import uuid as uuid_module

    from sales_ops.catalog import glue

    name = f"hostile_{uuid_module.uuid4().hex[:6]}"
    glue.put_table(
        local_stack,
        glue.parquet_table_input(
            name, [("a", "int"), ("b", "string")], local_stack.s3_uri("x/"), [("d", "string")]
        ),
    )
    try:
        listed = _cli("tables", "--json", env=cli_env)
        assert listed.returncode == 0, listed.stderr
        assert name in [t["name"] for t in json.loads(listed.stdout)]
        described = _cli("describe", name, env=cli_env)
        assert described.returncode == 0, described.stderr
        assert "string" in described.stdout and "parquet" in described.stdout
        missing = _cli("describe", "no_such_table", env=cli_env)
        assert missing.returncode == 1 and "no table 'no_such_table'" in missing.stderr
        _no_traceback(missing)
    finally:
        glue.delete_table(local_stack, name)


def test_version_help_and_list():
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("sales-ops ")
    helped = _cli("query", "--help")
    assert "<bool>" not in helped.stdout and "<str>" not in helped.stdout
    assert "table|json|csv" in helped.stdout
    listed = _cli("query", "--list")
    assert "amounts are order_total." in " ".join(listed.stdout.split())


# Every numeric option: negative, zero where meaningless, NaN, inf, huge: a clear refusal (exit 2)
# before any work; the endpoint has nothing listening, so work started would fail differently.
NUMERIC = [
    (["load", "--orders", "1", "--rate"], ["-1", "nan", "inf", "1e308"]),
    (["load", "--orders", "1", "--timeout"], ["-1", "0", "nan", "inf", "1e308"]),
    (["load", "--orders"], ["-1", "nan", "inf", "99999999999999"]),
    (["load", "--orders", "1", "--seed"], ["nan", "inf"]),
    (["crawl", "--timeout"], ["-1", "0", "nan", "inf", "1e308"]),
    (["compact", "--retention-hours"], ["-1", "nan", "inf", "1e8"]),
    (["compact", "--lookback-hours"], ["-5", "0", "nan", "inf", "1e8"]),
    (["rollup", "--retention-hours"], ["-1", "nan", "inf", "1e8"]),
    (["check", "--max-age"], ["-1", "0", "nan", "inf", "1e308"]),
    (["dashboard", "--port"], ["-1", "0", "70000", "nan", "inf"]),
]


@pytest.mark.parametrize(("args", "value"), [(a, v) for a, values in NUMERIC for v in values])
def test_numeric_options_are_validated_before_any_work(args, value, tmp_path):
    from typer.testing import CliRunner

    from sales_ops.cli import app
    from tests.harness import free_port

    env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "SALES_OPS_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, [*args, value], env=env)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "not running" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "value"),
    [(["compact", "--retention-hours"], "0"), (["load", "--orders", "0", "--rate"], "0")],
)
def test_meaningful_zeros_are_accepted(args, value, tmp_path):
    from typer.testing import CliRunner

    from sales_ops.cli import app
    from tests.harness import free_port

    env = {"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "SALES_OPS_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, [*args, value], env=env)
    assert result.exit_code == 1 and "embedded AWS not running" in result.output  # validation passed


def test_check_fails_fast_when_the_emulator_is_down(tmp_path):
    import os
    import time

    from tests.harness import free_port

    env = {
        **os.environ,
        "SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "SALES_OPS_STATE_DIR": str(tmp_path),
    }
    started = time.monotonic()
    result = _cli_process("check", env=env)  # start-up included
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and "embedded AWS not running" in result.stderr
    _no_traceback(result)
    assert elapsed < 15, f"took {elapsed:.0f}s"


def test_load_streams_and_stops_promptly_on_ctrl_c(cli_env, local_stack):
    import signal
    import subprocess
    import sys
    import time

    def items() -> int:
        pages = local_stack.client("dynamodb").get_paginator("scan")
        return sum(p["Count"] for p in pages.paginate(TableName=local_stack.table, Select="COUNT"))

    before = items()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sales_ops.cli",
            "load",
            "--orders",
            "50000000",
            "--rate",
            "300",
            "--seed",
            "15",
        ],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40  # interpreter start-up is slow on a busy 2-core machine
        while items() == before and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert items() > before, "nothing written: the 50M-order plan is not streamed"
        time.sleep(3)
        with open(f"/proc/{proc.pid}/status") as fh:
            rss_kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, errs = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in errs
    assert proc.returncode == 130
    assert stopped_after < 5, f"took {stopped_after:.1f}s to stop"
    assert rss_kib < 300 * 1024, f"RSS {rss_kib // 1024} MiB while writing"
    line = out.strip().splitlines()[-1]  # one line, even piped
    assert line.startswith("interrupted: wrote "), out
    inserts, deletes = (int(line.split(f" {w}")[0].rsplit(" ", 1)[-1]) for w in ("inserts", "deletes"))
    assert items() - before == inserts - deletes


# --- one malformed raw object ----------------------------------------------------------------
def test_a_malformed_raw_object_is_quarantined_and_compaction_goes_on(space):
    from datetime import UTC, datetime, timedelta

    from sales_ops.catalog.crawlers import LocalCrawler
    from sales_ops.curated.compaction import compact
    from sales_ops.curated.quarantine import QUARANTINE_PREFIX
    from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
    from sales_ops.quality import check_no_quarantined
    from sales_ops.query import DuckDBEngine
    from sales_ops.settings import RAW_PREFIX

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    stream = ChangeStream(seed=15)
    changes = plan_changes(60, end - timedelta(hours=5), end, seed=15)
    first, second = changes[:30], changes[30:]
    s3 = space.client("s3")
    bad_key = f"{RAW_PREFIX}dt={end:%Y-%m-%d}/hour={end:%H}/evil-upload"
    with DuckDBEngine(space) as engine:
        write_lines(space, list(raw_lines(first, stream)))
        s3.put_object(Bucket=space.bucket, Key=bad_key, Body=b'{"order_id": "x"}\nnot json at all\n')
        LocalCrawler(space).run()
        report = compact(space, engine)
        assert report.partitions_rewritten, "compaction did not go on"
        assert [q["source"] for q in report.quarantined] == [bad_key]
        assert "line 2: not JSON" in report.quarantined[0]["reason"]
        assert s3.list_objects_v2(Bucket=space.bucket, Prefix=bad_key).get("KeyCount", 0) == 0
        kept = s3.get_object(Bucket=space.bucket, Key=QUARANTINE_PREFIX + bad_key)
        assert kept["Body"].read().startswith(b'{"order_id"')  # nothing lost
        assert "not JSON" in kept["Metadata"]["reason"]

        outcome = check_no_quarantined(space)
        assert not outcome.passed
        assert bad_key in outcome.summary and "line 2: not JSON" in outcome.summary

        # The next run is not wedged either: new data still compacts.
        write_lines(space, list(raw_lines(second, stream)))
        LocalCrawler(space).run()
        assert compact(space, engine).new_objects > 0


def test_quarantined_objects_fail_the_dagster_check_with_their_reason(local_stack):
    import dagster as dg
    from sales_ops.curated.quarantine import quarantine
    from sales_ops.defs.quality.checks import no_quarantined_objects
    from sales_ops.defs.resources import PipelineResource

    s3 = local_stack.client("s3")
    key = "raw/orders/dt=1999-01-01/hour=00/hostile-probe"
    s3.put_object(Bucket=local_stack.bucket, Key=key, Body=b"\x00\x01 binary")
    moved = quarantine(local_stack, key, "not UTF-8 text (byte 2)")
    try:
        pipeline = PipelineResource(**local_stack.resource_config())
        result = no_quarantined_objects(pipeline=pipeline)
        assert isinstance(result, dg.AssetCheckResult)
        assert result.passed is False
        assert key in result.description and "not UTF-8" in result.description
        assert "quarantined" in result.metadata
    finally:
        s3.delete_object(Bucket=local_stack.bucket, Key=moved.key)


# --- pidfiles and the state dir ------------------------------------------------------------------
def test_a_stale_pidfile_never_names_or_kills_another_process(tmp_path, local_stack):
    import subprocess

    from sales_ops.local import supervisor
    from tests.harness import free_port, stack_settings

    mine = stack_settings(tmp_path / "state", free_port())
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        emulator_of_another_stack = supervisor.EMULATOR.pid(local_stack)
        assert emulator_of_another_stack is not None
        supervisor.EMULATOR.pidfile(mine).write_text(str(bystander.pid))
        supervisor.WORKERS.pidfile(mine).write_text(str(emulator_of_another_stack))

        assert supervisor.processes(mine) == {"emulator": None, "workers": None}
        supervisor.down(mine, log=lambda *_: None)
        assert bystander.poll() is None, "down killed an unrelated process"
        assert supervisor.EMULATOR.pid(local_stack) == emulator_of_another_stack, "down killed another stack"
        assert not supervisor.EMULATOR.pidfile(mine).exists()

        supervisor.EMULATOR.pidfile(mine).write_text(str(bystander.pid))
        supervisor.up(mine, log=lambda *_: None)  # starts its own, at once, despite the stale pidfile
        try:
            assert supervisor.EMULATOR.pid(mine) not in (None, bystander.pid)
        finally:
            supervisor.down(mine, log=lambda *_: None)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_state_dir_is_anchored_to_the_project_and_shown(tmp_path):
    import os

    from sales_ops.settings import PROJECT_ROOT
    from tests.harness import free_port

    env = {k: v for k, v in os.environ.items() if k != "SALES_OPS_STATE_DIR"}
    env["SALES_OPS_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", "local", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    _no_traceback(result)
    assert json.loads(result.stdout)["state_dir"] == str(PROJECT_ROOT / ".sales-ops")
    assert not (tmp_path / ".sales-ops").exists()
    shown = subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", "local", "status"],
        capture_output=True,
        text=True,
        env={**env, "SALES_OPS_STATE_DIR": str(tmp_path / "elsewhere")},
        cwd=tmp_path,
        timeout=120,
    )
    assert f"state dir {tmp_path / 'elsewhere'}" in shown.stdout


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("CREATE FUNCTION f() RETURNS int RETURN 1", ["error:"]),
        ("SELECT " + "(" * 3000 + "1" + ")" * 3000, ["nested too deeply"]),
        ("CREATE TEMP TABLE t AS SELECT 1", ["temporary tables"]),
        ("INSTALL httpfs", ["does not run INSTALL statements"]),
        ("SELECT 1; SELECT 2", ["one statement at a time"]),
    ],
)
def test_cli_refusals_are_one_clear_line(cli_env, sql, words):
    result = _cli("query", sql, env=cli_env)
    _no_traceback(result)
    assert result.returncode == 1
    assert "Falling back to parsing" not in result.stderr
    for word in words:
        assert word in result.stderr


# --- the embedded AWS: moto's control API, body sizes, file modes (issue 23, items 10 and 12) -----
def _local(port: int, **extra: str) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{port}", **extra}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/moto-api/recorder/upload-recording"),
        ("POST", "/moto-api/recorder/start-recording"),
        ("POST", "/moto-api/reset"),
        ("GET", "/moto-api/data.json"),
        ("POST", "/moto-api/seed?a=42"),
    ],
)
def test_emulator_refuses_motos_control_api(local_stack, method, path):
    from sales_ops.local import supervisor

    cwd = Path(f"/proc/{supervisor.EMULATOR.pid(local_stack)}/cwd").resolve()
    before = set(cwd.iterdir())
    status, _, body = _raw(local_stack.port, method, path, _local(local_stack.port), b"x = 1")
    assert status == 403 and b"control API" in body
    assert set(cwd.iterdir()) == before  # the recorder wrote moto_recording here
    status, _, body = _scan(local_stack.port)  # /moto-api/reset would have emptied every backend
    assert status == 200 and b"Items" in body


def test_emulator_caps_request_bodies_by_service(local_stack):
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.PutItem",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": SIGV4,
    }
    journal = local_stack.state_dir / "journal"
    size = sum(p.stat().st_size for p in journal.iterdir())
    status, _, body = _raw(
        local_stack.port, "POST", "/", _local(local_stack.port, **headers), b"x" * (21 << 20)
    )
    assert status == 413 and b"20 MiB limit for json requests" in body
    assert sum(p.stat().st_size for p in journal.iterdir()) < size + (1 << 20)  # not journaled
    # A small one that is not JSON either: refused as DynamoDB does, not applied, not journaled.
    marker = b"not-json-" + uuid.uuid4().hex.encode()
    status, _, body = _raw(local_stack.port, "POST", "/", _local(local_stack.port, **headers), marker * 50)
    assert status == 400 and b"SerializationException" in body
    assert not any(marker in p.read_bytes() for p in journal.iterdir())
    # A DynamoDB item at its 400 KB limit and a 30 MiB S3 object are still fine.
    ddb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    ddb.create_table(
        TableName="hostile-big",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="hostile-big", Item={"k": {"S": "x"}, "pad": {"S": "p" * 399_000}})
    ddb.delete_table(TableName="hostile-big")
    s3.create_bucket(Bucket="hostile-big")
    s3.put_object(Bucket="hostile-big", Key="big.bin", Body=b"b" * (30 << 20))
    assert s3.head_object(Bucket="hostile-big", Key="big.bin")["ContentLength"] == 30 << 20
    s3.delete_object(Bucket="hostile-big", Key="big.bin")
    s3.delete_bucket(Bucket="hostile-big")
    # Pipes' REST calls and IAM get 1 MiB.
    status, _, body = _raw(
        local_stack.port,
        "POST",
        "/v1/pipes/evil",
        _local(local_stack.port, **{"Content-Type": "application/json"}),
        b"{" + b" " * (2 << 20) + b"}",
    )
    assert status == 413 and b"1 MiB limit for other requests" in body


def test_the_state_dir_snapshot_and_journal_are_private(tmp_path):
    from tests.harness import running_stack

    with running_stack(tmp_path / "stack") as settings:
        state = settings.state_dir
    # Stopped: the emulator wrote its snapshot on SIGTERM.
    modes = {
        p.relative_to(state).as_posix() or ".": oct(p.stat().st_mode & 0o777)
        for p in [state, *state.rglob("*")]
    }
    dirs = {name: mode for name, mode in modes.items() if (state / name).is_dir()}
    assert set(dirs.values()) == {"0o700"}, dirs
    assert modes["emulator.snapshot"] == "0o600"
    assert {mode for name, mode in modes.items() if name.startswith("journal/")} == {"0o600"}


# --- raw object keys with glob characters (issue 23, item 4) -------------------------------------
def _raw_line(order_id: str, seq: int) -> bytes:
    """One raw_orders line as the Lambda writes it (docs/design.md §2.2)."""
    stamp = "2026-01-01T00:10:00Z"
    row = {
        "event_id": f"ev-{order_id}",
        "event_type": "INSERT",
        "event_time": stamp,
        "sequence_number": str(seq),
        "is_deleted": False,
        "order_id": order_id,
        "customer_id": "cus-1",
        "product_id": "sku-1",
        "product_name": "Mug",
        "category": "home",
        "quantity": 1,
        "unit_price": 5.00,
        "order_total": 5.00,
        "status": "PAID",
        "channel": "web",
        "region": "us-east",
        "created_at": stamp,
        "updated_at": stamp,
        "extra": "{}",
    }
    return json.dumps(row).encode() + b"\n"


def test_raw_keys_with_glob_characters_are_read_as_themselves(space):
    from sales_ops.catalog.crawlers import LocalCrawler
    from sales_ops.curated.compaction import compact
    from sales_ops.query import DuckDBEngine

    hour = "raw/orders/dt=2026-01-01/hour=00/"
    names = ["evil[1].json", "evil1.json", "*", "x?y", "xzy", "[!a]b", "**", "a b+c#d%20e&f=g", "é{a,b}"]
    s3 = space.client("s3")
    for n, name in enumerate(names):
        s3.put_object(Bucket=space.bucket, Key=hour + name, Body=_raw_line(f"o-{n}", 100 + n))
    LocalCrawler(space).run()
    with DuckDBEngine(space) as engine:
        rows = engine.query(f'SELECT "$path", order_id FROM {space.database}.raw_orders ORDER BY 2').rows
        # Each object once: `*` used to expand to the whole hour, `evil[1].json` to match nothing.
        assert [list(r) for r in rows] == [
            [space.s3_uri(hour + name), f"o-{n}"] for n, name in enumerate(names)
        ]
        only = engine.query(
            f'SELECT order_id FROM {space.database}.raw_orders WHERE "$path" IN '
            f"('{space.s3_uri(hour + 'evil[1].json')}', '{space.s3_uri(hour + '*')}')"
        ).rows
        assert sorted(only) == [("o-0",), ("o-2",)]
        report = compact(space, engine)
        assert report.rows == len(names)
        latest = engine.query(
            f"SELECT count(*), count(DISTINCT order_id) FROM {space.database}.orders_latest"
        )
        assert [list(r) for r in latest.rows] == [[len(names), len(names)]]


# --- backfill: --at and exports that are not what they claim (issue 23, items 6 and 7) ----------
def test_backfill_at_a_time_starts_an_export_locally(cli_env):
    from datetime import UTC, datetime, timedelta

    at = (datetime.now(UTC) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = _cli("backfill", "--at", at, "--json", env=cli_env)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["export_arn"].split(":table/")[1].startswith("orders/export/")


@pytest.mark.parametrize(
    ("at", "words"),
    [
        ("0001-01-01T00:00:00+14:00", "is out of range"),
        ("1969-12-31T23:00:00Z", "is out of range"),
        ("2999-01-01T00:00:00Z", "is in the future"),
        ("2020-01-01T00:00:00Z", "outside of the point in time recovery window"),
    ],
)
def test_backfill_at_an_impossible_time_is_one_clear_line(cli_env, at, words):
    result = _cli("backfill", "--at", at, env=cli_env)
    _no_traceback(result)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr


@pytest.fixture(scope="module")
def exported(local_stack):
    """A lake with orders and a completed export of the table, in the stack's own bucket; and
    orders_latest's count once compacted, which no refused backfill below may change."""
    from sales_ops.backfill.export import start_export, wait_export
    from sales_ops.curated.compaction import compact
    from sales_ops.load.shop import run_load
    from sales_ops.local.progress import wait_delivered
    from sales_ops.targets import crawler_for, engine_for

    run_load(local_stack, orders=12, rate=0, seed=2323)
    wait_delivered(local_stack, timeout=300, poll=0.1)
    crawler_for(local_stack).run()
    with engine_for(local_stack) as engine:
        compact(local_stack, engine)
        orders = engine.query(ORDERS_LATEST_COUNT.format(database=local_stack.database)).rows
    return wait_export(local_stack, start_export(local_stack).arn, timeout=120), orders


ORDERS_LATEST_COUNT = "SELECT count(*) FROM {database}.orders_latest"


def _export_object(settings, info, name: str) -> str:
    root = info.manifest_key.rsplit("/", 1)[0]
    if name == "data":
        manifest = settings.client("s3").get_object(Bucket=info.bucket, Key=f"{root}/manifest-files.json")
        return json.loads(manifest["Body"].read().splitlines()[0])["dataFileS3Key"]
    return f"{root}/{name}"


def _tampered(settings, info, name: str, body: bytes):
    """Replace one object of the export; yields, then puts the original back."""
    s3, key = settings.client("s3"), _export_object(settings, info, name)
    original = s3.get_object(Bucket=info.bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=info.bucket, Key=key, Body=body)
    return key, original


def _gzip_of_zeros(size: int) -> bytes:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    chunk = b"\0" * (1 << 20)
    return b"".join([*(packer.compress(chunk) for _ in range(size >> 20)), packer.flush()])


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("manifest-files.json", b"", "lists 0 items in 0 files, manifest-summary.json says"),
        ("data", b"", "holds 0 items, its manifest says"),
        ("data", "half", "truncated or corrupt gzip"),
        ("data", "not-export", "is not an export item"),
        ("data", "bomb", "decompresses past"),
        ("manifest-summary.json", b"[]", "is not a JSON object"),
    ],
)
def test_backfill_refuses_an_export_that_is_not_what_its_manifests_say(
    local_stack, exported, name, body, words
):
    import gzip

    from sales_ops.targets import engine_for

    exported, before = exported
    s3 = local_stack.client("s3")
    key = _export_object(local_stack, exported, name)
    original = s3.get_object(Bucket=exported.bucket, Key=key)["Body"].read()
    if body == "half":
        body = original[: len(original) // 2]
    elif body == "not-export":
        body = gzip.compress(b'{"order_id": "o-1"}\n' * 12)
    elif body == "bomb":
        body = _gzip_of_zeros(256 << 20)  # 256 MiB of zeros in ~250 KB: memory stays bounded
    s3.put_object(Bucket=exported.bucket, Key=key, Body=body)
    try:
        result = _cli("backfill", "--export", exported.arn, env=stack_env_of(local_stack))
    finally:
        s3.put_object(Bucket=exported.bucket, Key=key, Body=original)
    _no_traceback(result)
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())  # one line, however the console wraps it
    assert said.startswith("error: ") and said.count("error: ") == 1 and words in said, result.stderr
    count = ORDERS_LATEST_COUNT.format(database=local_stack.database)
    with engine_for(local_stack) as engine:  # a new engine: what the lake holds now
        assert engine.query(count).rows == before  # nothing applied: the lake keeps its orders
        assert before[0][0] > 0


def stack_env_of(settings):
    from tests.harness import stack_env

    return stack_env(settings)


# --- last: the pipeline is still healthy after every probe above ----------------------------------
def test_check_still_passes_after_the_hostile_probes(local_stack):
    from sales_ops.curated.compaction import compact
    from sales_ops.load.shop import run_load
    from sales_ops.local.progress import wait_delivered
    from sales_ops.quality import run_checks
    from sales_ops.targets import crawler_for, engine_for

    run_load(local_stack, orders=20, rate=0, seed=1515)
    wait_delivered(local_stack, timeout=300, poll=0.1)
    crawler_for(local_stack).run()
    with engine_for(local_stack) as engine:
        compact(local_stack, engine)
        outcomes = run_checks(local_stack, engine)
    assert [o.name for o in outcomes if not o.passed] == [], [o.summary for o in outcomes if not o.passed]


# --- a change Kinesis refuses never stalls the Pipe (issue 23, item 5) ----------------------------
def test_a_record_kinesis_refuses_is_dead_lettered_and_the_pipe_goes_on(fresh_stack):
    from sales_ops.local.pipe import dead_letters_path
    from sales_ops.local.progress import wait_delivered
    from tests.harness import stack_env
    from tests.helpers import order_item, raw_events

    ddb = fresh_stack.client("dynamodb")
    long_id = "o" * 300  # DynamoDB takes 2,048 bytes; a Kinesis partition key at most 256 characters
    ddb.put_item(TableName=fresh_stack.table, Item=order_item(long_id))
    big = order_item("o-big", pad={"S": "\x01" * 190_000})  # JSON escapes each as 6 bytes: over 1 MiB
    ddb.put_item(TableName=fresh_stack.table, Item=big)
    ddb.put_item(TableName=fresh_stack.table, Item={**big, "status": {"S": "SHIPPED"}})
    ddb.put_item(TableName=fresh_stack.table, Item=order_item("o-after"))
    wait_delivered(fresh_stack, timeout=180, poll=0.1)
    delivered = {e["order_id"] for e in raw_events(fresh_stack)}
    assert "o-after" in delivered and long_id not in delivered  # the records behind it went on

    letters = [json.loads(line) for line in dead_letters_path(fresh_stack).read_text().splitlines()]
    reasons = [letter["reason"] for letter in letters]
    assert any("partition key of 300 characters" in r for r in reasons), reasons
    assert any("Kinesis takes at most 1,048,576" in r for r in reasons), reasons
    assert oct(dead_letters_path(fresh_stack).stat().st_mode & 0o777) == "0o600"

    status = _cli("local", "status", "--json", env=stack_env(fresh_stack))
    assert status.returncode == 1 and json.loads(status.stdout)["dead_letters"] == len(letters)
    status = _cli("local", "status", env=stack_env(fresh_stack))
    assert status.returncode == 1 and "dead letters" in status.stdout
