"""The processing-failed check on error objects as Firehose writes them on AWS (GZIP) and locally."""

from __future__ import annotations

import gzip
import json

import pytest

from sales_ops.quality import checks
from sales_ops.settings import ERROR_PREFIX, Settings

pytestmark = pytest.mark.slow


def error_line(code: str, message: str) -> bytes:
    return json.dumps({"rawData": "e30=", "errorCode": code, "errorMessage": message}).encode() + b"\n"


def test_gzip_and_plain_error_objects_are_both_read(space: Settings) -> None:
    """Defect 7: with CompressionFormat GZIP the error objects are gzip; each is read, not 'unreadable'."""
    s3 = space.client("s3")
    zipped = gzip.compress(error_line("Lambda.FunctionError", "bad record") * 3)
    s3.put_object(Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/01/01/00/a.gz", Body=zipped)
    s3.put_object(Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/01/01/01/b", Body=error_line("X", "plain"))
    s3.put_object(Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/01/01/02/c.gz", Body=zipped[:20])  # torn
    outcome = checks.check_no_processing_failed(space)
    assert not outcome.passed and outcome.details["records"] == 5
    reasons = {(r["errorCode"], r["count"]) for r in outcome.details["reasons"]}
    assert reasons == {("Lambda.FunctionError", 3), ("X", 1), ("unreadable", 1)}


def test_only_the_newest_error_objects_are_read(space: Settings) -> None:
    s3 = space.client("s3")
    for i in range(checks.MAX_ERROR_OBJECTS + 5):
        s3.put_object(
            Bucket=space.bucket, Key=f"{ERROR_PREFIX}2026/01/01/00/{i:03}", Body=error_line("X", "m")
        )
    outcome = checks.check_no_processing_failed(space)
    assert outcome.details["objects"] == checks.MAX_ERROR_OBJECTS + 5
    assert outcome.details["objects_read"] == outcome.details["records"] == checks.MAX_ERROR_OBJECTS
