"""The compiled JSON-protocol parser (sales_ops/botocore_fast.py) gives what botocore's gives.

Every output and error shape of the JSON services the pipeline calls is filled with random values
(absent and null members, null list items, keys no shape knows, nested and recursive shapes,
timestamps and blobs), and both parsers read the same bytes: the results must be equal, key order
included (their repr).
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import botocore.session
import pytest
from botocore import parsers
from botocore.model import Shape

from sales_ops.botocore_fast import CompiledJSONParser, CompiledParserFactory
from sales_ops.settings import response_timestamp

SERVICES = ("glue", "dynamodb", "dynamodbstreams", "kinesis", "firehose", "athena")


def fake(shape: Shape, rng: random.Random, depth: int = 0) -> Any:
    """A JSON value for `shape` as a server might send it (wire names, extra keys, nulls)."""
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            roll = rng.random()
            if depth > 4 or roll < 0.3:
                continue
            key = member.serialization.get("name", name)
            out[key] = None if roll < 0.4 else fake(member, rng, depth + 1)
        if rng.random() < 0.3:
            out["NotInTheModel"] = {"x": [1, None]}
        return out
    if kind == "list":
        return [
            None if rng.random() < 0.1 else fake(shape.member, rng, depth + 1)
            for _ in range(rng.randint(0, 3))
        ]
    if kind == "map":
        return {f"k{i}": fake(shape.value, rng, depth + 1) for i in range(rng.randint(0, 3))}
    if kind == "timestamp":
        return rng.choice([1733300000, 1733300000.25, "2026-12-04T11:12:37.000Z"])
    if kind == "blob":
        return base64.b64encode(rng.randbytes(5)).decode()
    if kind in ("integer", "long"):
        return rng.randint(-5, 2**40)
    if kind in ("float", "double"):
        return rng.random()
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(["a", "ü-ß", ""])


def shapes(service: str) -> list[Shape]:
    model = botocore.session.get_session().get_service_model(service)
    found = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        if operation.has_event_stream_output:
            continue  # a stream of events, not a body (Kinesis' SubscribeToShard)
        found += [s for s in (operation.output_shape, *operation.error_shapes) if s is not None]
    return found


def response(body: bytes) -> dict[str, Any]:
    return {"body": body, "headers": {"x-amzn-requestid": "r-1"}, "status_code": 200}


@pytest.mark.parametrize("service", SERVICES)
def test_every_shape_parses_as_botocore_parses_it(service: str) -> None:
    rng = random.Random(service)
    for shape in shapes(service):
        for _ in range(3):
            body = json.dumps(fake(shape, rng)).encode()
            want = parsers.JSONParser(timestamp_parser=response_timestamp).parse(response(body), shape)
            got = CompiledJSONParser(timestamp_parser=response_timestamp).parse(response(body), shape)
            assert repr(got) == repr(want), shape.name


def test_bodies_orjson_refuses_and_errors_parse_as_before() -> None:
    shape = next(s for s in shapes("glue") if s.name == "GetTableResponse")
    for body in (b'{"Table": {"Name": "t", "Parameters": {"n": "1"}}, "x": NaN}', b"not json", b""):
        want = parsers.JSONParser().parse(response(body), shape)
        assert repr(CompiledJSONParser().parse(response(body), shape)) == repr(want)
    error = {
        "body": b'{"__type": "EntityNotFoundException", "Message": "no"}',
        "headers": {},
        "status_code": 400,
    }
    assert CompiledJSONParser().parse(error, shape) == parsers.JSONParser().parse(error, shape)


def test_the_factory_compiles_json_only() -> None:
    factory = CompiledParserFactory()
    assert type(factory.create_parser("json")) is CompiledJSONParser
    assert type(factory.create_parser("rest-xml")) is parsers.RestXMLParser
