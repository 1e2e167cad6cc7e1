"""The emulator's fast paths answer exactly as moto does (sales_ops/local/fastpath.py, keepalive.py).

One emulator is given a realistic catalog (databases, JSON/Parquet tables, a view, an updated
table, hundreds of partitions with unicode values, timestamps and parameters) and killed; its
state dir is copied, and two emulators recover the same state from it (the journal's replay is
deterministic, so the same times and ids): one with the fast path, one with
SALES_OPS_FASTPATH=0, where moto's own serializer answers everything. The same requests go to
both and the answers must be the same bytes with the same status and headers (less the
per-request id and date). The fast one's log must show that it answered them itself.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore import handlers

from sales_ops.catalog import glue
from sales_ops.local.supervisor import port_open
from sales_ops.settings import Settings
from tests.harness import ROOT, free_port, stack_settings

pytestmark = pytest.mark.slow

DB = "fast_db"
ODD = ("ü", "日本 語", "a b", 'quo"te', "back\\slash", "tab\tx", "emoji 🚀", "<&>")
PER_REQUEST = {"x-amzn-requestid", "x-amz-request-id", "date", "x-amz-id-2"}


@contextmanager
def emulator(state_dir: Path, **env: str) -> Iterator[tuple[Settings, subprocess.Popen]]:
    """An emulator on a free port over `state_dir`; SIGTERM (a clean stop, which logs) on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "sales_ops.local.emulator", "--port", str(port)]
    cmd += ["--state-dir", str(state_dir), "--snapshot-every", "3600"]
    log = (state_dir.parent / f"{state_dir.name}.log").open("ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.1)
        yield stack_settings(state_dir, port), proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _populate(settings: Settings) -> None:
    g = settings.client("glue")
    g.create_database(
        DatabaseInput={"Name": DB, "Description": "ventes — 販売", "Parameters": {"k": "v", "ü": ""}}
    )
    g.create_database(DatabaseInput={"Name": "bare_db"})
    raw_columns = [("order_id", "string"), ("amount", "double"), ("note", "string")]
    g.create_table(DatabaseName=DB, TableInput=glue.raw_table_input("s3://b/raw/orders/", raw_columns))
    parquet = glue.parquet_table_input(
        "orders_latest", [("order_id", "string"), ("größe", "int")], "s3://b/curated/", [("dt", "string")]
    )
    g.create_table(DatabaseName=DB, TableInput=parquet)
    view = glue.view_input("v_orders", "SELECT 1 AS one", [("one", "integer")], DB)
    g.create_table(DatabaseName=DB, TableInput=view)
    parquet["Parameters"] = {**parquet["Parameters"], "rev": "2"}
    g.update_table(DatabaseName=DB, TableInput=parquet)  # UpdateTime, VersionId 2
    table = g.get_table(DatabaseName=DB, Name=glue.RAW_TABLE)["Table"]
    entries = [
        glue.partition_input(
            table, [f"2026-01-{1 + i // 24:02d}", f"{i % 24:02d}"], f"s3://b/raw/{i}/", {"n": str(i)}
        )
        for i in range(240)
    ]
    entries += [glue.partition_input(table, [odd, "00"], f"s3://b/raw/odd{i}/") for i, odd in enumerate(ODD)]
    entries[3]["LastAccessTime"] = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    glue.put_partitions(settings, table, entries)
    glue.put_partitions(settings, table, entries[:5])  # repointed: BatchUpdatePartition


BUCKET = "fast-bucket"
KEYS = [
    f"raw/orders/dt=2026-01-{d:02d}/hour={h:02d}/part-{n}.json.gz"
    for d in (1, 2)
    for h in range(12)
    for n in range(3)
]
KEYS += [f"raw/odd/{name}" for name in ("ü.json", "日本 語.json", "a+b c.json", "<&>'\".json", "tab\t.json")]
KEYS += ["curated/latest/part-0.parquet", "top-level.txt"]


def _populate_bucket(settings: Settings) -> None:
    s3 = settings.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="fast-empty")
    for i, key in enumerate(KEYS):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * i, Metadata={"n": str(i)})


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(service, operation, parameters) of the calls compared, errors included."""
    raw = {"DatabaseName": DB, "TableName": glue.RAW_TABLE}
    tables = [
        ("glue", "get_table", {"DatabaseName": DB, "Name": n})
        for n in (glue.RAW_TABLE, "orders_latest", "v_orders")
    ]
    odd = {**raw, "PartitionsToGet": [{"Values": [o, "00"]} for o in (*ODD, "nope")]}
    listing = [
        {},
        {"Prefix": "raw/"},
        {"Prefix": "raw/", "Delimiter": "/"},
        {"Prefix": "raw/orders/dt=2026-01-02/", "Delimiter": "/"},
        {"Delimiter": "/"},
        {"Prefix": "raw/odd/"},
        {"Prefix": "nothing/"},
        {"MaxKeys": 7},
        {"MaxKeys": 7, "StartAfter": "raw/orders/dt=2026-01-01/hour=05/part-1.json.gz"},
        {"FetchOwner": True, "Prefix": "raw/odd/"},
        {"MaxKeys": 0},
    ]
    return [
        ("glue", "get_database", {"Name": DB}),
        ("glue", "get_database", {"Name": "bare_db"}),
        ("glue", "get_database", {"Name": "missing_db"}),
        ("glue", "get_databases", {}),
        *tables,
        ("glue", "get_table", {"DatabaseName": DB, "Name": "missing"}),
        ("glue", "get_tables", {"DatabaseName": DB}),
        ("glue", "get_tables", {"DatabaseName": DB, "Expression": "orders.*"}),
        ("glue", "get_partitions", raw),
        ("glue", "get_partitions", {**raw, "Expression": "dt = '2026-01-03'"}),
        ("glue", "get_partition", {**raw, "PartitionValues": ["2026-01-01", "03"]}),
        ("glue", "get_partition", {**raw, "PartitionValues": ["日本 語", "00"]}),
        ("glue", "get_partition", {**raw, "PartitionValues": ["1999-01-01", "00"]}),
        ("glue", "batch_get_partition", odd),
        *[("s3", "list_objects_v2", {"Bucket": BUCKET, **params}) for params in listing],
        *[("s3-raw", "list_objects_v2", {"Bucket": BUCKET, **params}) for params in listing[:6]],
        ("s3-raw", "list_objects", {"Bucket": BUCKET, "Prefix": "raw/odd/"}),
        *[
            ("s3", "list_objects", {"Bucket": BUCKET, **params})
            for params in listing
            if "StartAfter" not in params and "FetchOwner" not in params
        ],
        ("s3", "list_objects", {"Bucket": BUCKET, "Marker": "raw/odd/", "MaxKeys": 4}),
        ("s3", "list_objects_v2", {"Bucket": "fast-empty"}),
        ("s3", "list_objects_v2", {"Bucket": "missing-bucket"}),
    ]


def _answers(settings: Settings) -> list[tuple[int, dict[str, str], bytes]]:
    """Status, headers and body of each request, as the server sent them; ListObjectsV2 also
    page by page over the whole bucket (continuation tokens)."""
    seen: list[tuple[int, dict[str, str], bytes]] = []

    def keep(http_response: Any, **_: Any) -> None:
        headers = {k.lower(): v for k, v in http_response.headers.items() if k.lower() not in PER_REQUEST}
        body = re.sub(rb"<RequestId>[^<]*</RequestId>", b"<RequestId/>", http_response.content)  # per request
        seen.append((http_response.status_code, headers, body))

    clients = {name: settings.client(name) for name in ("glue", "s3")}
    # Keys as they are in the XML (what DuckDB's httpfs asks for), not botocore's encoding-type=url.
    clients["s3-raw"] = settings.client("s3", connect_timeout=61)
    for event in ("ListObjects", "ListObjectsV2"):
        clients["s3-raw"].meta.events.unregister(
            f"before-parameter-build.s3.{event}", handlers.set_list_objects_encoding_type_url
        )
    for name, client in clients.items():
        client.meta.events.register(f"after-call.{name.split('-')[0]}", keep)
    for service, operation, params in _requests():
        client = clients[service]
        with suppress(client.exceptions.ClientError):
            getattr(client, operation)(**params)
    pages = (
        clients["s3"]
        .get_paginator("list_objects_v2")
        .paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 10})
    )
    assert sum(len(page["Contents"]) for page in pages) == len(KEYS)
    return seen


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """A factory of emulators recovering the same populated state, each from its own copy."""
    root = tmp_path_factory.mktemp("fastpath")
    with emulator(root / "origin") as (settings, proc):
        _populate(settings)
        _populate_bucket(settings)
        proc.send_signal(signal.SIGKILL)  # the journal, not a snapshot, carries the state
    copies = iter(range(100))

    def start(**env: str) -> Any:
        copy = root / f"copy{next(copies)}"
        shutil.copytree(root / "origin", copy)
        return emulator(copy, **env)

    return start


def test_catalog_reads_and_listings_are_byte_for_byte_motos_answers(recovered):
    with recovered() as (fast, _):
        fast_answers = _answers(fast)
    with recovered(SALES_OPS_FASTPATH="0") as (moto, _):
        moto_answers = _answers(moto)
    pages = -(-len(KEYS) // 10)
    assert len(fast_answers) == len(moto_answers) == len(_requests()) + pages
    calls = [*_requests(), *[("s3", "list_objects_v2 page", {"page": n}) for n in range(pages)]]
    for (_, operation, params), mine, theirs in zip(calls, fast_answers, moto_answers, strict=True):
        assert mine == theirs, f"{operation}({params}) differs"
    assert any(b"2026-01-01" in body and len(body) > 100_000 for _, _, body in fast_answers)
    assert any("日本".encode() in body and b"<Key>" in body for _, _, body in fast_answers)
    log = (fast.state_dir.parent / f"{fast.state_dir.name}.log").read_text()
    ok = sum(1 for status, _, _ in fast_answers if status == 200)
    assert f"fast path: {ok} responses, 0 handed to moto's serializer" in log
    # the second GetPartitions and the BatchGetPartition were joined from the first one's texts
    kept = re.search(r"partitions: (\d+) written, (\d+) from their kept text", log)
    assert kept and int(kept[2]) >= 24 + len(ODD), log[-2000:]


def test_a_changed_partition_is_never_answered_from_its_old_text(recovered):
    raw = {"DatabaseName": DB, "TableName": glue.RAW_TABLE}
    first = {"Values": ["2026-01-01", "00"]}
    with recovered() as (settings, _):
        g = settings.client("glue")

        def locations() -> dict[tuple[str, ...], str]:
            listed = g.get_partitions(**raw)["Partitions"]
            batch = g.batch_get_partition(**raw, PartitionsToGet=[first])["Partitions"]
            assert batch == [p for p in listed if p["Values"] == first["Values"]]
            return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in listed}

        before = locations()  # every partition's text is kept now
        assert before[("2026-01-01", "00")] == "s3://b/raw/0/"
        table = g.get_table(DatabaseName=DB, Name=glue.RAW_TABLE)["Table"]
        moved = glue.partition_input(table, first["Values"], "s3://b/moved/0/")
        g.update_partition(**raw, PartitionValueList=first["Values"], PartitionInput=moved)
        g.delete_partition(**raw, PartitionValues=["2026-01-01", "01"])
        g.create_partition(
            **raw, PartitionInput=glue.partition_input(table, ["2027-01-01", "00"], "s3://b/new/")
        )
        after = locations()
        assert after[("2026-01-01", "00")] == "s3://b/moved/0/"
        assert ("2026-01-01", "01") not in after and after[("2027-01-01", "00")] == "s3://b/new/"
        assert {k: v for k, v in after.items() if k[0] != "2027-01-01" and k != ("2026-01-01", "00")} == {
            k: v for k, v in before.items() if k not in (("2026-01-01", "00"), ("2026-01-01", "01"))
        }


def test_kept_connections_serve_many_requests_and_refusals_close_when_they_must(recovered):
    with recovered() as (settings, _):
        conn = http.client.HTTPConnection("127.0.0.1", settings.port, timeout=10)
        host = {"Host": f"127.0.0.1:{settings.port}"}
        form = {**host, "Content-Type": "text/plain"}  # an unsigned form POST: refused unread

        def ask(method: str, body: bytes = b"", **headers: str) -> http.client.HTTPResponse:
            conn.request(method, "/moto-api/data.json", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response

        first = ask("GET", **host)
        sock = conn.sock
        assert first.status == 403 and first.getheader("Connection") is None
        assert ask("GET", **host).status == 403 and conn.sock is sock  # the same connection
        refused = ask("POST", b"x" * (512 << 10), **form)  # drained: the connection stays usable
        assert refused.status == 403 and refused.getheader("Connection") is None and conn.sock is sock
        assert ask("GET", **host).status == 403 and conn.sock is sock
        refused = ask("POST", b"x" * (3 << 20), **form)  # too much to drain: closed, as before
        assert refused.status == 403 and refused.getheader("Connection") == "close"
        assert ask("GET", **host, Connection="close").getheader("Connection") == "close"
        conn.close()


def test_partitions_asked_without_their_column_schema_are_the_partitions_less_their_columns(recovered):
    raw = {"DatabaseName": DB, "TableName": glue.RAW_TABLE}

    def less_columns(partition: dict[str, Any]) -> dict[str, Any]:
        sd = {k: v for k, v in partition["StorageDescriptor"].items() if k != "Columns"}
        return {**partition, "StorageDescriptor": sd}

    with recovered() as (settings, _):
        g = settings.client("glue")
        full = g.get_partitions(**raw)["Partitions"]
        assert full and all(p["StorageDescriptor"]["Columns"] for p in full)
        for _ in range(2):  # then from the kept texts: neither kind is answered with the other's
            bare = g.get_partitions(**raw, ExcludeColumnSchema=True)["Partitions"]
            assert bare == [less_columns(p) for p in full]
            assert g.get_partitions(**raw)["Partitions"] == full
