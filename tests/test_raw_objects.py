"""What Firehose writes (sales_ops/raw_objects.py): bodies gzip or plain, read by magic bytes, and names
that do not sort by time once the delivery stream's version reaches 10 (issue 21)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import duckdb
import pytest

from sales_ops.curated.live import tail_filter, tail_start
from sales_ops.curated.state import CompactionState
from sales_ops.raw_objects import (
    decode_body,
    delivered_at,
    delivery_position,
    encode_body,
    is_gzip,
    object_name,
    position_folder,
)
from sales_ops.settings import RAW_COMPRESSION_ENV, RAW_PREFIX, Settings, SettingsError

HOUR = f"{RAW_PREFIX}dt=2026-03-01/hour=10/"


def test_gzip_by_default_named_as_firehose_names_it() -> None:
    at = datetime(2026, 3, 1, 10, 5, 7, tzinfo=UTC)
    assert object_name("orders-raw", 3, at, "u-1", "GZIP") == "orders-raw-3-2026-03-01-10-05-07-u-1.gz"
    assert object_name("orders-raw", 3, at, "u-1", "UNCOMPRESSED") == "orders-raw-3-2026-03-01-10-05-07-u-1"
    text = b'{"order_id": "o-1"}\n'
    assert is_gzip(encode_body(text, "GZIP")) and decode_body(encode_body(text, "GZIP")) == text
    assert encode_body(text, "UNCOMPRESSED") == text == decode_body(text)
    with pytest.raises(ValueError, match="unsupported compression"):
        encode_body(text, "SNAPPY")


def test_the_compression_is_a_setting_gzip_unless_told() -> None:
    assert Settings.from_env("local", env={}).raw_compression == "GZIP"
    plain = Settings.from_env("local", env={RAW_COMPRESSION_ENV: "uncompressed"})
    assert plain.raw_compression == "UNCOMPRESSED" and plain.to_env()[RAW_COMPRESSION_ENV] == "UNCOMPRESSED"
    with pytest.raises(SettingsError, match=RAW_COMPRESSION_ENV):
        Settings.from_env("local", env={RAW_COMPRESSION_ENV: "zip"})


def test_positions_sort_by_delivery_time_though_names_do_not() -> None:
    ninth = HOUR + "orders-raw-9-2026-03-01-10-05-00-aaaa.gz"
    tenth = HOUR + "orders-raw-10-2026-03-01-10-06-00-bbbb.gz"
    next_hour = f"{RAW_PREFIX}dt=2026-03-01/hour=11/orders-raw-9-2026-03-01-11-00-00-cccc.gz"
    assert tenth < ninth  # what broke the StartAfter cursor
    assert delivery_position(ninth) < delivery_position(tenth) < delivery_position(next_hour)
    assert delivered_at(tenth) == "2026-03-01-10-06-00"
    assert position_folder(delivery_position(tenth)) == HOUR.rstrip("/")
    upload = HOUR + "hand-upload.json"  # not Firehose's name: its LastModified stands in
    later = datetime(2026, 3, 1, 10, 7, tzinfo=UTC)
    assert delivery_position(tenth) < delivery_position(upload, later)


def test_the_live_tail_keeps_objects_of_a_newer_stream_version_in_its_first_partition() -> None:
    """orders_live's `"$path" >=` bound took `<stream>-<version>-<time>`: a `-10-` object delivered
    after a `-9-` watermark sorted before it and was left out of the view."""
    state = CompactionState(watermark=HOUR + "orders-raw-9-2026-03-01-10-45-00-aaaa.gz")
    where = tail_filter(tail_start(state), "bucket")
    newer = f"s3://bucket/{HOUR}orders-raw-10-2026-03-01-10-50-00-bbbb.gz"
    older_hour = f"s3://bucket/{RAW_PREFIX}dt=2026-03-01/hour=09/orders-raw-9-2026-03-01-09-10-00-c.gz"
    rows = duckdb.sql(
        f"""SELECT "$path" FROM (VALUES ('2026-03-01', '10', '{newer}'), ('2026-03-01', '09', '{older_hour}'))
        AS t(dt, hour, "$path") WHERE {where}"""
    ).fetchall()
    assert rows == [(newer,)]


def test_a_gzip_body_reads_the_same_as_plain() -> None:
    text = b"".join(b'{"n": %d}\n' % i for i in range(100))
    assert decode_body(gzip.compress(text)) == text
