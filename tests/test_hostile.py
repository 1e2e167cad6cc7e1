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
