"""The emulator's request-header reader (sales_ops/local/headers.py) gives what http.client's
parse_headers gives: the same headers, payload, defects and bytes consumed, for plain requests and
for every form it hands to the standard parser (folding, envelope lines, bad names, bare CR,
multipart, a stream ending early)."""

from __future__ import annotations

import http.client
import io

import pytest

from sales_ops.local import headers

REQUESTS = [
    b"Host: 127.0.0.1:4566\r\nAccept-Encoding: identity\r\nX-Amz-Target: AWSGlue.GetTable\r\n"
    b"Content-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=t/x, "
    b"SignedHeaders=a;b, Signature=ff\r\nContent-Length: 4\r\n\r\nBODY",
    b"A:b\r\nB:   c  \r\nC:\r\n\r\n",
    b"A: b\n\n",
    b"A: b\r\n folded\r\n\r\n",
    b"From x\r\nA: b\r\n\r\n",
    b"Bad Name: x\r\n\r\n",
    b"Content-Type: multipart/form-data; boundary=x\r\n\r\n",
    b"Content-Type: message/delivery-status\r\n\r\n",
    b"A: b\r\n",
    b"",
    b"\r\n",
    b":x\r\n\r\n",
    b"A: b\rc\r\n\r\n",
    b"A: \xe9\xff\r\n\r\n",
    b"X: a:b:c\r\nX: dup\r\n\r\nrest",
]


@pytest.mark.parametrize("raw", REQUESTS)
def test_headers_read_as_http_client_reads_them(raw: bytes) -> None:
    theirs, mine = io.BytesIO(raw), io.BytesIO(raw)
    want, got = http.client.parse_headers(theirs), headers.parse_headers(mine)
    assert type(got) is type(want)
    assert got.items() == want.items()
    assert got.as_string() == want.as_string()  # payload included (sub-messages: by their text)
    assert got.is_multipart() == want.is_multipart()
    assert got.get_unixfrom() == want.get_unixfrom()
    assert [type(d) for d in got.defects] == [type(d) for d in want.defects]
    assert got.get_content_type() == want.get_content_type()
    assert mine.tell() == theirs.tell()


def test_plain_requests_skip_the_standard_parser() -> None:
    assert headers._plain([b"Host: x\r\n", b"A:  b \r\n", b"\r\n"], http.client.HTTPMessage) is not None
    assert headers._plain([b"Host: x\r\n", b" folded\r\n", b"\r\n"], http.client.HTTPMessage) is None
