"""The Firehose processor (lambdas/firehose_transform/handler.py) against docs/design.md §2.2.

The real handler, loaded by file path (lambdas/ is not a package), in both builds: with orjson
and with the standard library alone (orjson blocked at import).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from tests.harness import load_handler

EVENTS = Path(__file__).resolve().parent / "events"
ORDER_ATTRIBUTES = [
    "order_id",
    "customer_id",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "order_total",
    "status",
    "channel",
    "region",
    "created_at",
    "updated_at",
]
HEADER = ["event_id", "event_type", "event_time", "sequence_number", "is_deleted"]


H = load_handler()
H_STD = load_handler(block_orjson=True)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def b64(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.b64encode(raw).decode()


def firehose_event(datas: list[str]) -> dict[str, Any]:
    return {
        "invocationId": "test-invocation",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders-raw",
        "region": "us-east-1",
        "records": [
            {"recordId": f"rec-{i:06d}", "approximateArrivalTimestamp": 1763820401000 + i, "data": d}
            for i, d in enumerate(datas)
        ],
    }


def run_one(payload: Any, module: ModuleType = H) -> dict[str, Any]:
    event = firehose_event([b64(payload)])
    out = module.handler(event, None)["records"]
    assert len(out) == 1
    assert out[0]["recordId"] == "rec-000000"
    return out[0]


def line_of(out: dict[str, Any]) -> str:
    return base64.b64decode(out["data"]).decode()


def row_of(out: dict[str, Any]) -> dict[str, Any]:
    """The Ok record's JSON object; numbers as Decimal so that no precision is lost."""
    assert out["result"] == "Ok", out
    text = line_of(out)
    assert text.endswith("\n") and text.count("\n") == 1
    return json.loads(text, parse_float=Decimal)


def extra_of(out: dict[str, Any]) -> dict[str, Any]:
    """The Ok record's `extra`: a JSON string (§2.2), parsed; numbers as Decimal."""
    text = row_of(out)["extra"]
    assert isinstance(text, str), text
    return json.loads(text, parse_float=Decimal)


def record(event_name: str = "INSERT", **dynamodb: Any) -> dict[str, Any]:
    """A stream record like the insert fixture, with dynamodb fields replaced (None removes)."""
    rec = fixture("pipe_record_insert.json")
    rec["eventName"] = event_name
    for key, value in dynamodb.items():
        if value is None:
            rec["dynamodb"].pop(key, None)
        else:
            rec["dynamodb"][key] = value
    return rec


def image(**attrs: Any) -> dict[str, Any]:
    """The insert fixture's NewImage with attributes replaced (None removes)."""
    img = copy.deepcopy(fixture("pipe_record_insert.json")["dynamodb"]["NewImage"])
    for key, value in attrs.items():
        if value is None:
            img.pop(key, None)
        else:
            img[key] = value
    return img


# --- the three fixtures and the Firehose event ---------------------------------------------------


def test_insert_fixture() -> None:
    out = run_one(fixture("pipe_record_insert.json"))
    assert out["metadata"] == {"partitionKeys": {"dt": "2025-11-22", "hour": "14"}}
    assert set(out) == {"recordId", "result", "data", "metadata"}
    assert line_of(out) == (
        '{"event_id":"a1b2c3","event_type":"INSERT","event_time":"2025-11-22T14:03:11Z",'
        '"sequence_number":"11100000000000000000001","is_deleted":false,"order_id":"ord-9001",'
        '"customer_id":"cus-0007","product_id":"sku-0101","product_name":"Wireless Mouse",'
        '"category":"electronics","quantity":2,"unit_price":24.50,"order_total":49.00,'
        '"status":"PLACED","channel":"mobile","region":"us-east","created_at":"2026-11-22T14:03:11Z",'
        '"updated_at":"2026-11-22T14:05:40Z","extra":"{}"}\n'
    )


def test_modify_fixture_takes_new_image() -> None:
    row = row_of(run_one(fixture("pipe_record_modify.json")))
    assert row["event_type"] == "MODIFY"
    assert row["status"] == "PAID"  # NewImage; OldImage says PLACED
    assert row["is_deleted"] is False
    assert row["sequence_number"] == "11200000000000000000002"


def test_remove_fixture_takes_old_image_and_is_deleted() -> None:
    row = row_of(run_one(fixture("pipe_record_remove.json")))
    assert row["event_type"] == "REMOVE"
    assert row["is_deleted"] is True
    assert row["status"] == "PAID"
    assert row["order_total"] == Decimal("49.00")
    assert row["event_time"] == "2025-11-22T14:06:40Z"


def test_firehose_transform_event_fixture() -> None:
    event = fixture("firehose_transform_event.json")
    out = H.handler(event, None)["records"]
    assert [o["recordId"] for o in out] == [r["recordId"] for r in event["records"]]
    assert [o["result"] for o in out] == ["Ok", "Ok", "Ok"]
    assert [row_of(o)["event_type"] for o in out] == ["INSERT", "MODIFY", "REMOVE"]
    assert H.handler(event, None) == H_STD.handler(event, None)


# --- the Ok record -------------------------------------------------------------------------------


def test_output_keys_fixed_order_and_2_1_attributes_always_present() -> None:
    # A REMOVE needs only its order_id (an INSERT/MODIFY missing one is rejected, below).
    old = image(category=None, region=None, channel=None)
    row = row_of(run_one(record("REMOVE", NewImage=None, OldImage=old)))
    assert list(row) == [*HEADER, *ORDER_ATTRIBUTES, "extra"]
    assert row["category"] is None and row["region"] is None and row["channel"] is None


def test_unknown_attributes_go_to_extra_in_image_order() -> None:
    extra_attrs = {
        "gift_wrap": {"BOOL": True},
        "event_id": {"S": "not-the-header"},  # names that collide with output keys stay in extra
        "extra": {"N": "1"},
        "notes": {"NULL": True},
    }
    out = run_one(record(NewImage={**image(), **extra_attrs}))
    extra = extra_of(out)
    assert extra == {"gift_wrap": True, "event_id": "not-the-header", "extra": 1, "notes": None}
    assert row_of(out)["event_id"] == "a1b2c3"
    assert list(extra) == ["gift_wrap", "event_id", "extra", "notes"]
    # The compact JSON text of that object, as a string value of the line.
    assert line_of(out).endswith(
        ',"extra":"{\\"gift_wrap\\":true,\\"event_id\\":\\"not-the-header\\",\\"extra\\":1,\\"notes\\":null}"}\n'
    )


def test_extra_is_a_string_even_when_empty() -> None:
    for module in (H, H_STD):
        row = row_of(run_one(record(), module))
        assert row["extra"] == "{}"


def test_extra_names_the_json_serde_could_not_map_round_trip() -> None:
    # As a struct these broke every query on raw_orders (docs/design.md §2.2); as text they are data.
    names = ["gift-wrap", "ns:key", "a.b", "Coupon", "coupon", "COUPON", "", " spaced ", "ü-ñ"]
    attrs = {name: {"S": f"value of {name}"} for name in names}
    attrs["Gift"] = {"M": {"Note": {"S": "hi"}, "note": {"N": "24.50"}, "x.y": {"L": [{"N": "-0.0010"}]}}}
    for module in (H, H_STD):
        extra = extra_of(run_one(record(NewImage={**image(), **attrs}), module))
        assert list(extra) == [*names, "Gift"]
        assert all(extra[name] == f"value of {name}" for name in names)
        assert extra["Gift"] == {"Note": "hi", "note": Decimal("24.50"), "x.y": [Decimal("-0.0010")]}


def test_remove_with_keys_only() -> None:
    rec = fixture("pipe_record_remove.json")
    del rec["dynamodb"]["OldImage"]
    row = row_of(run_one(rec))
    assert row["is_deleted"] is True and row["event_type"] == "REMOVE"
    assert row["order_id"] == "ord-9001"
    assert all(row[a] is None for a in ORDER_ATTRIBUTES if a != "order_id")
    assert row["extra"] == "{}"


def test_remove_with_null_old_image_uses_keys() -> None:
    rec = fixture("pipe_record_remove.json")
    rec["dynamodb"]["OldImage"] = None
    assert row_of(run_one(rec))["order_id"] == "ord-9001"


def test_insert_ignores_old_image_and_modify_ignores_keys() -> None:
    rec = fixture("pipe_record_modify.json")
    rec["dynamodb"]["Keys"] = {"order_id": {"S": "ord-other"}}
    assert row_of(run_one(rec))["order_id"] == "ord-9001"


@pytest.mark.parametrize(
    ("value", "event_time", "dt", "hour"),
    [
        (1763820191, "2025-11-22T14:03:11Z", "2025-11-22", "14"),  # seconds (the Pipe)
        (1795356191, "2026-11-22T14:03:11Z", "2026-11-22", "14"),
        (1795356191123, "2026-11-22T14:03:11.123Z", "2026-11-22", "14"),  # milliseconds
        (1795356191000, "2026-11-22T14:03:11.000Z", "2026-11-22", "14"),  # ms keep ms precision
        (1795356191.0, "2026-11-22T14:03:11Z", "2026-11-22", "14"),  # whole float seconds
        (1795459128.366, "2026-11-23T18:38:48.366Z", "2026-11-23", "18"),  # moto: fractional s
        (1795356191123.0, "2026-11-22T14:03:11.123Z", "2026-11-22", "14"),
        (0, "1970-01-01T00:00:00Z", "1970-01-01", "00"),
        (10**11, "5138-11-16T09:46:40Z", "5138-11-16", "09"),  # the threshold itself is seconds
        (10**11 + 1, "1973-03-03T09:46:40.001Z", "1973-03-03", "09"),
        (1795391999, "2026-11-22T23:59:59Z", "2026-11-22", "23"),
    ],
)
def test_event_time_from_seconds_or_milliseconds(value: float, event_time: str, dt: str, hour: str) -> None:
    out = run_one(record(ApproximateCreationDateTime=value))
    assert row_of(out)["event_time"] == event_time
    assert out["metadata"] == {"partitionKeys": {"dt": dt, "hour": hour}}


def test_exact_decimals_are_kept_verbatim() -> None:
    numbers = ["24.50", "12345678901234567890.123456789", "-0.0010", "0", "-0", "1E+5", "2.5e-3"]
    img = image(
        unit_price={"N": "24.50"},
        discount={"N": "-0.0010"},
        big={"N": "123456789012345678901234567890123456789"},
        all_numbers={"NS": numbers},
        nested={"M": {"price": {"N": "-0.0010"}, "list": {"L": [{"N": "24.50"}]}}},
    )
    for module in (H, H_STD):
        out = run_one(record(NewImage=img), module)
        text = line_of(out)
        assert '"unit_price":24.50,' in text
        row = json.loads(text, parse_float=Decimal)
        # Inside extra's JSON text the numbers keep their exact spelling too.
        extra = row["extra"]
        assert '"discount":-0.0010,' in extra
        assert '"big":123456789012345678901234567890123456789,' in extra
        assert '"all_numbers":[24.50,12345678901234567890.123456789,-0.0010,0,-0,1E+5,2.5e-3]' in extra
        assert '"nested":{"price":-0.0010,"list":[24.50]}' in extra
        assert extra_of(out)["discount"] == Decimal("-0.0010")


@pytest.mark.parametrize(("n", "json_text"), [("+5", "5"), (".5", "0.5"), ("5.", "5"), ("007", "7")])
def test_numbers_valid_for_dynamodb_but_not_json_are_respelled(n: str, json_text: str) -> None:
    text = line_of(run_one(record(NewImage=image(discount={"N": n}))))
    assert f'"extra":"{{\\"discount\\":{json_text}}}"' in text


def test_every_dynamodb_type_is_decoded() -> None:
    img = image(
        s={"S": 'héllo "quoted" \\ \n tab\t ✓ 😀'},
        n={"N": "3.14"},
        b={"B": "AAEC/w=="},
        t={"BOOL": True},
        f={"BOOL": False},
        null={"NULL": True},
        ss={"SS": ["a", "b"]},
        ns={"NS": ["1", "2.50"]},
        bs={"BS": ["AA==", "AQ=="]},
        m={
            "M": {
                "inner": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}}},
                "empty": {"M": {}},
            }
        },
        l={"L": [{"L": [{"BOOL": False}]}, {"M": {"k": {"SS": ["z"]}}}, {"L": []}]},
    )
    assert extra_of(run_one(record(NewImage=img))) == {
        "s": 'héllo "quoted" \\ \n tab\t ✓ 😀',
        "n": Decimal("3.14"),
        "b": "AAEC/w==",
        "t": True,
        "f": False,
        "null": None,
        "ss": ["a", "b"],
        "ns": [1, Decimal("2.50")],
        "bs": ["AA==", "AQ=="],
        "m": {"inner": {"deep": ["x", 1, None]}, "empty": {}},
        "l": [[False], {"k": ["z"]}, []],
    }


def test_2_1_attribute_types_are_judged_on_insert_not_on_remove() -> None:
    # A quantity written as S breaks the contract (§2.1); a REMOVE carries its image as it was.
    assert "quantity: type S, not N" in H.explain_failure(b64(record(NewImage=image(quantity={"S": "2"}))))
    old = image(quantity={"S": "2"})
    row = row_of(run_one(record("REMOVE", NewImage=None, OldImage=old)))
    assert row["quantity"] == "2" and row["is_deleted"] is True


def test_tolerated_shapes_parse_alike_in_both_builds() -> None:
    # orjson refuses 1e400 and turns huge ints into floats; the stdlib parser has the last word.
    rec = record(SizeBytes=1)
    raw = json.dumps(rec).replace('"SizeBytes": 1', '"SizeBytes": 1e400').encode()
    for module in (H, H_STD):
        assert run_one(raw, module)["result"] == "Ok"
    raw = json.dumps(rec).replace('"SizeBytes": 1', '"SizeBytes": 123456789012345678901234567890').encode()
    assert run_one(raw, H) == run_one(raw, H_STD)


# --- ProcessingFailed ------------------------------------------------------------------------------

BAD_IMAGE_CASES = {
    "plain JSON, not DynamoDB-typed": ({"order_id": "x"}, "not DynamoDB-typed"),
    "unknown type tag": (image(quantity={"X": "2"}), "unknown type tag 'X'"),
    "two tags in one value": (image(quantity={"N": "2", "S": "2"}), "several type tags"),
    "empty attribute value": (image(quantity={}), "not DynamoDB-typed"),
    "attribute value is a list": (image(quantity=[{"N": "2"}]), "not DynamoDB-typed"),
    "N not a number": (image(quantity={"N": "abc"}), "N value 'abc' is not a number"),
    "N NaN": (image(quantity={"N": "NaN"}), "not a number"),
    "N Infinity": (image(quantity={"N": "Infinity"}), "not a number"),
    "N hex": (image(quantity={"N": "0x10"}), "not a number"),
    "N with spaces": (image(quantity={"N": " 5"}), "not a number"),
    "N with underscore": (image(quantity={"N": "1_000"}), "not a number"),
    "N empty": (image(quantity={"N": ""}), "not a number"),
    "N is a JSON number": (image(quantity={"N": 2}), "not a number"),
    "N exponent too large": (image(quantity={"N": "+1e99999999999999999999"}), "not a number"),
    "S not a string": (image(status={"S": 5}), "S value of the wrong JSON type"),
    "BOOL not a bool": (image(gift={"BOOL": "true"}), "BOOL value of the wrong JSON type"),
    "NULL false": (image(note={"NULL": False}), "NULL value of the wrong JSON type"),
    "M not an object": (image(m={"M": []}), "M value of the wrong JSON type"),
    "L not an array": (image(lst={"L": {}}), "L value of the wrong JSON type"),
    "SS with a number": (image(tags={"SS": ["a", 1]}), "SS value must be an array of strings"),
    "NS with a bad number": (image(ns={"NS": ["1", "x"]}), "N value 'x' is not a number"),
    "BS not an array": (image(bs={"BS": "AA=="}), "BS value must be an array of strings"),
    "bad value deep inside": (
        image(items={"L": [{"S": "ok"}, {"M": {"qty": {"Q": "1"}}}]}),
        "NewImage.items[1].qty: unknown type tag 'Q'",
    ),
    "no order_id": (image(order_id=None), "order_id missing in dynamodb.NewImage"),
    "order_id not S": (image(order_id={"N": "9001"}), "order_id not a non-empty S value"),
    "order_id empty": (image(order_id={"S": ""}), "order_id not a non-empty S value"),
    "image not an object": ([{"order_id": {"S": "x"}}], "dynamodb.NewImage not an object"),
}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "bottom"}
    for _ in range(depth):
        value = {"M": {"a": value}}
    return value


BAD_RECORD_CASES: dict[str, tuple[Any, str]] = {
    **{k: (record(NewImage=img), reason) for k, (img, reason) in BAD_IMAGE_CASES.items()},
    "too deeply nested": (record(NewImage=image(deep=_nested(70))), "nested deeper than 64 levels"),
    "unknown eventName": ({**record(), "eventName": "UPSERT"}, "unknown eventName 'UPSERT'"),
    "missing eventName": ({k: v for k, v in record().items() if k != "eventName"}, "unknown eventName None"),
    "eventSource not DynamoDB": ({**record(), "eventSource": "aws:s3"}, "eventSource 'aws:s3'"),
    "missing eventID": ({k: v for k, v in record().items() if k != "eventID"}, "eventID missing"),
    "dynamodb not an object": ({**record(), "dynamodb": "x"}, "dynamodb section missing"),
    "INSERT without NewImage": (record(NewImage=None), "INSERT record: dynamodb.NewImage missing"),
    "MODIFY without NewImage": (record("MODIFY", NewImage=None), "MODIFY record: dynamodb.NewImage missing"),
    "REMOVE without OldImage or Keys": (
        record("REMOVE", NewImage=None, Keys=None),
        "REMOVE record: dynamodb.Keys missing",
    ),
    "missing SequenceNumber": (record(SequenceNumber=None), "SequenceNumber None is not a string of digits"),
    "non-numeric SequenceNumber": (record(SequenceNumber="111a"), "'111a' is not a string of digits"),
    "SequenceNumber as a JSON number": (record(SequenceNumber=111), "111 is not a string of digits"),
    "SequenceNumber with non-ASCII digits": (record(SequenceNumber="١٢٣"), "is not a string of digits"),
    "missing ApproximateCreationDateTime": (
        record(ApproximateCreationDateTime=None),
        "ApproximateCreationDateTime missing",
    ),
    "ApproximateCreationDateTime as text": (
        record(ApproximateCreationDateTime="1763820191"),
        "ApproximateCreationDateTime '1763820191' is not a number",
    ),
    "ApproximateCreationDateTime as bool": (
        record(ApproximateCreationDateTime=True),
        "ApproximateCreationDateTime True is not a number",
    ),
    "ApproximateCreationDateTime negative": (record(ApproximateCreationDateTime=-1), "out of range"),
    "ApproximateCreationDateTime past 9999": (
        record(ApproximateCreationDateTime=253402300800000),
        "out of range",
    ),
    "lone surrogate in a string": (
        json.dumps(record(NewImage=image(note={"S": "\ud800"}))).encode(),
        "cannot encode the output as UTF-8 JSON",
    ),
    "not base64": ("!!! not base64 !!!", "data is not valid base64"),
    "base64 with bad padding": ("eyJ", "data is not valid base64"),
    "non-ASCII base64": ("ëyJ9", "data is not valid base64"),
    "not JSON": (b"not json", "data is not UTF-8 JSON"),
    "not UTF-8": (b'{"eventID": "\xff"}', "data is not UTF-8 JSON"),
    "UTF-16 JSON": (json.dumps(record()).encode("utf-16"), "data is not UTF-8 JSON"),
    "NaN literal": (json.dumps(record()).replace('"SizeBytes": 321', '"SizeBytes": NaN').encode(), "NaN"),
    "truncated JSON": (json.dumps(record()).encode()[:-10], "data is not UTF-8 JSON"),
    "JSON array": (b"[1, 2]", "data is JSON list, not a stream record object"),
    "empty data": (b"", "data is not UTF-8 JSON"),
}


def _data(payload: Any) -> str:
    return payload if isinstance(payload, str) else b64(payload)


@pytest.mark.parametrize("case", list(BAD_RECORD_CASES))
def test_bad_record_is_processing_failed_with_reason(case: str) -> None:
    payload, reason = BAD_RECORD_CASES[case]
    data = _data(payload)
    for module in (H, H_STD):
        event = firehose_event([data])
        out = module.handler(event, None)["records"]
        # Same recordId, input data kept as is (Firehose writes it as rawData), no metadata.
        assert out == [{"recordId": "rec-000000", "result": "ProcessingFailed", "data": data}]
        explained = module.explain_failure(data)
        assert explained is not None and reason in explained, explained
        assert module.transform_record(event["records"][0]) == (out[0], explained)


@pytest.mark.parametrize("data", [None, 123, ["eyJ9"], {"a": 1}])
def test_record_data_of_the_wrong_type_fails_that_record_only(data: Any) -> None:
    event = firehose_event([b64(record()), "x"])
    event["records"][1]["data"] = data
    out = H.handler(event, None)["records"]
    assert [o["result"] for o in out] == ["Ok", "ProcessingFailed"]
    assert out[1]["data"] == data
    assert H.explain_failure(data) == "record has no base64 data string"


def test_explain_failure_is_none_for_a_good_record() -> None:
    assert H.explain_failure(b64(record())) is None
    assert H_STD.explain_failure(b64(record())) is None


def test_an_event_without_records_raises() -> None:
    # Firehose then counts a failed invocation: retried, then the batch goes to the error prefix.
    with pytest.raises(KeyError):
        H.handler({"invocationId": "x"}, None)
    with pytest.raises(KeyError):
        H.handler({"records": [{"data": b64(record())}]}, None)


def test_failures_are_logged_one_json_line_each_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    event = firehose_event([b64(record()), "%%%", b64(record("UPSERT")), b64(record())])
    with caplog.at_level(logging.INFO, logger="firehose_transform"):
        out = H.handler(event, None)["records"]
    assert [o["result"] for o in out] == ["Ok", "ProcessingFailed", "ProcessingFailed", "Ok"]
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    failed = [entry for entry in lines if entry["event"] == "record_failed"]
    assert [(f["recordId"], f["invocationId"]) for f in failed] == [
        ("rec-000001", "test-invocation"),
        ("rec-000002", "test-invocation"),
    ]
    assert "base64" in failed[0]["reason"] and "UPSERT" in failed[1]["reason"]
    summary = [entry for entry in lines if entry["event"] == "transform_summary"]
    assert summary == [
        {
            "event": "transform_summary",
            "invocationId": "test-invocation",
            "records": 4,
            "ok": 2,
            "dropped": 0,
            "processing_failed": 2,
        }
    ]
    assert caplog.records[-1].levelno == logging.WARNING  # a batch with failures is a warning


# --- volume and the two builds -------------------------------------------------------------------


def test_six_megabyte_batch_keeps_order_ids_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    base = fixture("pipe_record_modify.json")
    poisons = ["not base64!", b64(b"{oops"), b64(record("UPSERT")), b64(record(NewImage={"order_id": "x"}))]
    datas, expected = [], []
    size, i = 0, 0
    while size < 6_150_000:  # estimate; the exact size is asserted below
        if i % 7 == 3:
            data, result = poisons[i % len(poisons)], "ProcessingFailed"
        else:
            rec = copy.deepcopy(base)
            rec["eventID"] = f"ev-{i}"
            rec["dynamodb"]["SequenceNumber"] = str(10**22 + i)
            rec["dynamodb"]["ApproximateCreationDateTime"] = 1795356191 + i
            rec["dynamodb"]["NewImage"]["order_id"] = {"S": f"ord-{i:07d}"}
            rec["dynamodb"]["NewImage"]["order_total"] = {"N": f"{i}.{i % 100:02d}"}
            data, result = b64(rec), "Ok"
        datas.append(data)
        expected.append(result)
        size += len(data) + 100
        i += 1
    event = firehose_event(datas)
    assert 6_000_000 <= len(json.dumps(event)) <= 6 * 1024 * 1024  # Lambda's 6 MB request limit
    assert len(datas) > 3000

    with caplog.at_level(logging.ERROR, logger="firehose_transform"):
        out = H.handler(event, None)["records"]
    assert [o["recordId"] for o in out] == [r["recordId"] for r in event["records"]]
    assert [o["result"] for o in out] == expected
    assert expected.count("ProcessingFailed") == len(datas) // 7 + (len(datas) % 7 > 3)
    for n, o in enumerate(out):
        if o["result"] == "Ok":
            assert row_of(o)["order_id"] == f"ord-{n:07d}"
        else:
            assert o["data"] == datas[n]
    with caplog.at_level(logging.ERROR, logger="firehose_transform"):
        assert H_STD.handler(event, None)["records"] == out


def test_builds_load_as_intended() -> None:
    assert H.orjson is orjson
    assert H_STD.orjson is None
    assert H._raw_number is orjson.Fragment and H_STD._raw_number is H_STD._RawNumber


VARIED_STRINGS = [
    "",
    "plain",
    'quote " backslash \\ slash /',
    "controls \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f end",
    "unicode é ñ 中文 😀 \u2028 \u2029 \ufeff",
    "".join(chr(c) for c in range(0x20)),
    "</script>&<>'",
]


def varied_images() -> list[dict[str, Any]]:
    out = []
    for n, text in enumerate(VARIED_STRINGS):
        out.append(
            image(
                product_name={"S": text},
                unit_price={"N": ["24.50", "0.1", "9999999999.99", "24.5", "0"][n % 5]},
                **{
                    text or "empty-name": {"S": text},
                    "flags": {"L": [{"BOOL": n % 2 == 0}, {"NULL": True}, {"SS": [text, "x"]}]},
                    "m": {"M": {text: {"NS": ["1", "2.50"]}, "b": {"BS": ["AA=="]}}},
                },
            )
        )
    return out


def test_stdlib_and_orjson_builds_give_identical_bytes() -> None:
    datas = [b64(record(NewImage=img)) for img in varied_images()]
    datas += [b64(fixture(f"pipe_record_{k}.json")) for k in ("insert", "modify", "remove")]
    datas += [_data(payload) for payload, _ in BAD_RECORD_CASES.values()]
    event = firehose_event(datas)
    fast, slow = H.handler(event, None), H_STD.handler(event, None)
    assert fast == slow
    assert sum(o["result"] == "Ok" for o in fast["records"]) == len(VARIED_STRINGS) + 3


def test_stdlib_encoder_matches_orjson_directly() -> None:
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    tree = {
        "s": every_char,
        every_char[:500]: [None, True, False, "", [], {}, [[{"a": []}]]],
        "nested": {"x": {"y": ["z", {"w": None}]}},
    }
    assert H.std_dumps_line(tree) == orjson.dumps(tree, option=orjson.OPT_APPEND_NEWLINE)
    numbers = ["24.50", "-0.0010", "1E+5"]
    assert H_STD.std_dumps_line({"n": [H_STD._RawNumber(n) for n in numbers]}) == orjson.dumps(
        {"n": [orjson.Fragment(n) for n in numbers]}, option=orjson.OPT_APPEND_NEWLINE
    )


def test_repeated_numbers_come_out_right_from_the_cache() -> None:
    for module in (H, H_STD):
        for price in ["24.50", "24.5", "24.50", "+24.50", "24.50"]:
            text = line_of(run_one(record(NewImage=image(unit_price={"N": price})), module))
            assert f'"unit_price":{price.lstrip("+")},' in text


# --- the order contract (docs/design.md §2.1), judged on INSERT/MODIFY ---------------------------

CONTRACT_BREACHES = {
    "quantity abc": ({"quantity": {"S": "abc"}}, "quantity: type S, not N"),
    "quantity not a number": ({"quantity": {"N": "abc"}}, "quantity: N value 'abc' is not a number"),
    "quantity 1.5": ({"quantity": {"N": "1.5"}}, "quantity: N value '1.5' is not an integer"),
    "quantity 0": ({"quantity": {"N": "0"}}, "quantity: N value '0' is not an integer"),
    "quantity past bigint": ({"quantity": {"N": "9" * 20}}, "is not an integer from 1"),
    "order_total 1e10": (
        {"order_total": {"N": "1e10"}},
        "order_total: N value '1e10' is outside DECIMAL(12,2)",
    ),
    "order_total 38 digits": ({"order_total": {"N": "1" * 38}}, "order_total: N value '1111"),
    "order_total 1E+125": ({"order_total": {"N": "1E+125"}}, "order_total: N value '1E+125' is outside"),
    "unit_price negative": ({"unit_price": {"N": "-1.00"}}, "unit_price: N value '-1.00' is outside"),
    "unit_price 3 decimals": (
        {"unit_price": {"N": "24.505"}},
        "unit_price: N value '24.505' has more than 2",
    ),
    "created_at not a date": (
        {"created_at": {"S": "not a date"}},
        "created_at: 'not a date' is not an ISO-8601",
    ),
    "created_at 2026-02-30": (
        {"created_at": {"S": "2026-02-30T10:00:00Z"}},
        "created_at: '2026-02-30T10:00:00Z' is not a calendar date",
    ),
    "created_at epoch number": ({"created_at": {"N": "1763820191"}}, "created_at: type N, not S"),
    "created_at year 99999": ({"created_at": {"S": "99999-01-01T00:00:00Z"}}, "is not an ISO-8601 instant"),
    "created_at year 1969": (
        {"created_at": {"S": "1969-12-31T23:59:59Z"}},
        "is not a calendar date in the years",
    ),
    "created_at 24:00": ({"created_at": {"S": "2026-01-01T24:00:00Z"}}, "is not an ISO-8601 instant"),
    "updated_at past 9999 in UTC": (
        {"updated_at": {"S": "9999-12-31T23:30:00-05:00"}},
        "updated_at: '9999-12-31T23:30:00-05:00' is outside the years 1970-9999 in UTC",
    ),
    "status cancelled": (
        {"status": {"S": "cancelled"}},
        "status: 'cancelled' is not one of CANCELLED, DELIVERED",
    ),
    "status missing": ({"status": None}, "status: missing"),
    "status NULL": ({"status": {"NULL": True}}, "status: type NULL, not S"),
    "product_name a number": ({"product_name": {"N": "7"}}, "product_name: type N, not S"),
    "region missing": ({"region": None}, "region: missing"),
}


@pytest.mark.parametrize("case", list(CONTRACT_BREACHES))
def test_a_value_outside_the_contract_is_rejected_by_order_and_attribute(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    attrs, reason = CONTRACT_BREACHES[case]
    bad = b64(record(NewImage=image(order_id={"S": "ord-bad"}, **attrs)))
    good = b64(fixture("pipe_record_insert.json"))
    for module in (H, H_STD):
        caplog.clear()
        out = module.handler(firehose_event([good, bad, good]), None)["records"]
        # The bad change fails alone, its data kept; the good ones beside it are untouched.
        assert [o["result"] for o in out] == ["Ok", "ProcessingFailed", "Ok"]
        assert out[1]["data"] == bad and out[0]["data"] == out[2]["data"]
        explained = module.explain_failure(bad)
        assert explained is not None and explained.startswith("order 'ord-bad': NewImage.")
        assert reason in explained, explained
        logged = [json.loads(r.getMessage()) for r in caplog.records]
        assert logged[0] == {
            "event": "record_failed",
            "invocationId": "test-invocation",
            "recordId": "rec-000001",
            "reason": explained,
        }


def test_a_modify_is_judged_too_and_a_remove_only_needs_its_order_id() -> None:
    bad = image(status={"S": "cancelled"}, quantity={"N": "1.5"})
    modify = record("MODIFY", NewImage=bad)
    assert "status: 'cancelled'" in H.explain_failure(b64(modify))
    remove = record("REMOVE", NewImage=None, OldImage=bad)
    assert row_of(run_one(remove))["status"] == "cancelled"
    keys_only = record("REMOVE", NewImage=None, OldImage=None, Keys={"order_id": {"S": "x" * 2048}})
    assert row_of(run_one(keys_only))["order_id"] == "x" * 2048


@pytest.mark.parametrize(
    ("written", "carried"),
    [
        ("2026-11-22T23:30:00-05:00", "2026-11-23T04:30:00Z"),  # filed under the UTC date
        ("2026-11-22T23:30:00.125+00:00", "2026-11-22T23:30:00.125Z"),
        ("2026-11-23T01:15:00.5+05:30", "2026-11-22T19:45:00.5Z"),
        ("2026-11-22T14:03:11.123456Z", "2026-11-22T14:03:11.123456Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
    ],
)
def test_an_instant_with_an_offset_is_normalised_to_utc(written: str, carried: str) -> None:
    for module in (H, H_STD):
        img = image(created_at={"S": written}, updated_at={"S": written})
        row = row_of(run_one(record(NewImage=img), module))
        assert row["created_at"] == carried and row["updated_at"] == carried


@pytest.mark.parametrize(
    ("attr", "written", "carried"),
    [
        ("quantity", "2.0", "2"),
        ("quantity", "1E+2", "100"),
        ("quantity", "+5", "5"),
        ("quantity", "9223372036854775807", "9223372036854775807"),
        ("unit_price", "24.500", "24.500"),  # trailing zeros are not more decimals
        ("unit_price", "2.45E+1", "24.5"),
        ("order_total", "9999999999.99", "9999999999.99"),
        ("order_total", "0", "0"),
    ],
)
def test_numbers_inside_the_contract_are_carried_in_a_spelling_the_column_reads(
    attr: str, written: str, carried: str
) -> None:
    for module in (H, H_STD):
        text = line_of(run_one(record(NewImage=image(**{attr: {"N": written}})), module))
        assert f'"{attr}":{carried},' in text


def test_the_contract_copy_matches_the_schema() -> None:
    # The handler keeps its own copy of §2.1's rules; the statuses are the schema's too.
    from sales_ops import schema

    # schema.py has no list of statuses of its own (only NOT_SALE_STATUSES and the description):
    # if it gains one (the compaction's guard), compare the two here.
    described = {c.name: c.description for c in schema.ORDER_COLUMNS}["status"]
    assert set(H.ORDER_STATUSES) == set(described.rstrip(".").replace(" or ", ", ").split(", "))
    assert set(schema.NOT_SALE_STATUSES) <= H.ORDER_STATUSES
    judged = {
        *H.STRING_ATTRIBUTES,
        "status",
        "quantity",
        "unit_price",
        "order_total",
        "created_at",
        "updated_at",
    }
    assert judged == set(H.ORDER_ATTRIBUTES)
    types = {c.name: c.latest_type for c in schema.ORDER_COLUMNS}
    assert types["unit_price"] == types["order_total"] == "decimal(12,2)"
    assert Decimal("9999999999.99") == H.MONEY_MAX and types["quantity"] == "bigint"
