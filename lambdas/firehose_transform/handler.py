"""Firehose processor: DynamoDB stream records (via EventBridge Pipe and Kinesis) to JSON lines.

Contract (docs/design.md §2.2). Firehose calls ``handler(event, context)`` with a transformation event
whose source is Kinesis; each ``records[i].data`` is base64 of one DynamoDB stream record in the
Lambda-event shape (``eventID``, ``eventName``, ``eventSource``, ``dynamodb{Keys, NewImage,
OldImage, SequenceNumber, ApproximateCreationDateTime}``). The answer is ``{"records": [...]}``
with exactly one output per input, in input order, with the same ``recordId``:

* ``Ok``: ``data`` is base64 of ONE JSON object plus ``"\\n"``, keys in this order:
  ``event_id, event_type, event_time, sequence_number, is_deleted``, the 13 attributes of
  docs/design.md §2.1 (always present, ``null`` when the image lacks them, so the Glue crawler sees one
  stable schema), then ``extra``: a JSON *string*, the compact JSON text of an object holding
  every other attribute of the image, in image order (``"{}"`` when there are none). A string, not
  an object, so that the crawler always types the column ``string``: an object would become a
  ``struct``, which the OpenX JSON SerDe cannot read when it is empty or has names with ``.``,
  ``:``, ``-`` or differing only in case (docs/design.md §2.2). Query it with
  ``json_extract_scalar(extra, '$.name')``.
  ``metadata.partitionKeys`` = ``{"dt": "YYYY-MM-DD", "hour": "HH"}`` of ``event_time``.
* ``ProcessingFailed``: ``data`` is the input ``data`` unchanged (Firehose stores it as rawData).
  The reason is logged (one JSON line per record) and available from ``transform_record`` and
  ``explain_failure``; it is not added to the response, whose record schema Firehose fixes.
* ``Dropped`` is never produced: every well-formed DynamoDB stream record is an order change
  (TTL expiries too: the item is gone from the table, so it must be gone downstream).

Decoding: INSERT/MODIFY use NewImage; REMOVE uses OldImage, else Keys alone, and sets
``is_deleted``. S, B -> string (B stays base64); N -> JSON number with the exact decimal text
("24.50" stays 24.50); BOOL -> bool; NULL -> null; M -> object; L -> array; SS, BS -> arrays of
strings; NS -> array of numbers. ``event_time`` is ISO-8601 UTC with ``Z`` from
ApproximateCreationDateTime: seconds (whole: no fraction; fractional: milliseconds), or
milliseconds when the value is above 1e11 (the native DynamoDB-to-Kinesis shape), which always
gives a 3-digit fraction.

A record fails (ProcessingFailed) when: data is not base64, not UTF-8 JSON or not an object;
eventName is not INSERT/MODIFY/REMOVE; eventSource is present and not aws:dynamodb; eventID is
missing; SequenceNumber is missing or not a string of digits; ApproximateCreationDateTime is
missing, not a number, negative or past year 9999; the image the event needs is missing; an
attribute value is not DynamoDB-typed JSON (not an object with exactly one known type tag, a
value of the wrong JSON type, an N that is not a finite number, nesting deeper than 64 levels);
order_id is missing, not S, or empty; and, for INSERT/MODIFY, an attribute of docs/design.md §2.1
outside its contract (``_check_order``: the reason names the order id and the attribute). A REMOVE
needs only its order_id. Values that pass are carried as written, except a quantity respelled as
integer digits, money written with an exponent respelled in fixed point, and a time with an offset
normalised to UTC ``Z``.

An event without a ``records`` list, or a record without ``recordId``, raises: no valid answer
exists, and Firehose treats the failed invocation as such (retries, then the error prefix).

Standard library only; orjson is used when importable (bundled in the deployment package) and
the output bytes are the same either way.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import json
import logging
import math
import re
import time
from decimal import Decimal
from json.encoder import encode_basestring as _encode_str  # the C escaper; orjson escapes alike
from typing import Any, NoReturn

try:
    import orjson
except ImportError:  # the handler must also run on the bare Lambda runtime
    orjson = None  # type: ignore[assignment]

__all__ = [
    "MONEY_MAX",
    "ORDER_ATTRIBUTES",
    "ORDER_STATUSES",
    "STRING_ATTRIBUTES",
    "explain_failure",
    "handler",
    "std_dumps_line",
    "transform_record",
]

ORDER_ATTRIBUTES: tuple[str, ...] = (
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
)
_NUMERIC = ("quantity", "unit_price", "order_total")
_CONTRACT_TAGS = {name: "N" if name in _NUMERIC else "S" for name in ORDER_ATTRIBUTES}  # §2.1 types
# The contract of docs/design.md §2.1 that INSERT/MODIFY images must meet (_check_order). A copy:
# this file is deployed alone; tests/test_handler.py compares it with sales_ops/schema.py.
ORDER_STATUSES = frozenset(("PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"))
STRING_ATTRIBUTES = ("order_id", "customer_id", "product_id", "product_name", "category", "channel", "region")
MONEY_MAX = Decimal("9999999999.99")  # DECIMAL(12,2), the Glue type of unit_price and order_total
_QUANTITY_MAX = 2**63 - 1  # bigint
_CENT = Decimal("0.01")
_MIN_YEAR = 1970
# Output key order is fixed by this template; copying a dict keeps it and is cheap.
_ROW_TEMPLATE: dict[str, Any] = dict.fromkeys(
    ("event_id", "event_type", "event_time", "sequence_number", "is_deleted", *ORDER_ATTRIBUTES, "extra")
)
_EVENT_NAMES = frozenset(("INSERT", "MODIFY", "REMOVE"))
_MS_THRESHOLD = 10**11  # 1e11 s is year 5138, 1e11 ms is 1973: larger values are milliseconds
_MAX_SECONDS = 253402300800  # 10000-01-01T00:00:00Z, keeps the ISO year at four digits
_MAX_DEPTH = 64  # DynamoDB nests 32 levels; this bounds recursion well below Python's limit
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
_LOOSE_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch

logger = logging.getLogger("firehose_transform")


class _Reject(Exception):
    """A record that cannot be transformed; ``path`` locates the attribute, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []
        self.order_id: str | None = None  # named in the reason when the image has a usable one

    def __str__(self) -> str:
        order = "" if self.order_id is None else f"order {self.order_id!r:.80}: "
        if not self.path:
            return order + self.reason
        where = "".join(p if p.startswith("[") else f".{p}" for p in reversed(self.path))
        return f"{order}{where.lstrip('.')}: {self.reason}"


# --- JSON in and out -------------------------------------------------------------------------


class _RawNumber(str):
    """Exact JSON number text, written without quotes by the stdlib encoder."""

    __slots__ = ()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


_std_decoder = json.JSONDecoder(parse_constant=_reject_constant)  # built once: json.loads would not


def _std_loads(raw: bytes) -> Any:
    # Decode as strict UTF-8 first: json.loads(bytes) would also guess UTF-16/32 and skip a BOM,
    # which orjson does not.
    return _std_decoder.decode(raw.decode("utf-8"))


def _std_encode(obj: Any) -> str:
    kind = type(obj)
    if kind is str:
        return _encode_str(obj)
    if kind is _RawNumber:
        return obj
    if kind is dict:  # str values inline: they are most of a row, and a call each costs
        items = [
            f"{_encode_str(k)}:{_encode_str(v) if type(v) is str else _std_encode(v)}" for k, v in obj.items()
        ]
        return "{" + ",".join(items) + "}"
    if kind is list:
        return "[" + ",".join([_std_encode(v) for v in obj]) + "]"
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    raise TypeError(f"cannot encode {kind.__name__}")


def std_dumps_line(obj: Any) -> bytes:
    """Compact JSON + newline, byte-identical to orjson.dumps(..., OPT_APPEND_NEWLINE)."""
    return (_std_encode(obj) + "\n").encode("utf-8")


# Each orjson feature is used only if this orjson has it (Fragment came in 3.9; a stub or an odd
# build may lack more), so any version, or none, imports and gives the same bytes.
_fast_loads: Any = getattr(orjson, "loads", None) or _std_loads
if hasattr(orjson, "dumps") and hasattr(orjson, "OPT_APPEND_NEWLINE") and hasattr(orjson, "Fragment"):
    _dumps_line: Any = functools.partial(orjson.dumps, option=orjson.OPT_APPEND_NEWLINE)
    _raw_number: Any = orjson.Fragment

    def _dumps_text(obj: Any) -> str:
        return orjson.dumps(obj).decode("utf-8")

else:
    _dumps_line = std_dumps_line
    _raw_number = _RawNumber
    _dumps_text = _std_encode


# --- DynamoDB attribute values -----------------------------------------------------------------


# N text -> raw number. Quantities and prices repeat a lot, and a lookup is cheaper than the
# regex; bounded (first come, kept) so that a long-lived container cannot grow without end.
_numbers: dict[str, Any] = {}
_NUMBERS_MAX = 20_000


def _canonical_number(text: str) -> str | None:
    try:
        return str(Decimal(text))  # always JSON-valid for a finite Decimal: "0.5", "7", "1E+5"
    except ArithmeticError:  # an exponent beyond what decimal can hold
        return None


def _number(text: Any) -> Any:
    if type(text) is str:
        if _JSON_NUMBER(text):
            raw = _raw_number(text)
        elif _LOOSE_NUMBER(text) and (canonical := _canonical_number(text)):
            # Valid for DynamoDB/Decimal, not JSON ("+5", ".5", "007"): same value, JSON spelling.
            raw = _raw_number(canonical)
        else:
            raise _Reject(f"N value {text!r:.60} is not a number")
        if len(_numbers) < _NUMBERS_MAX:
            _numbers[text] = raw
        return raw
    raise _Reject(f"N value {text!r:.60} is not a number")


def _strings(tag: str, values: Any) -> list[str]:
    if type(values) is list and all(type(v) is str for v in values):
        return values
    raise _Reject(f"{tag} value must be an array of strings")


def _decode(av: Any, depth: int) -> Any:
    """Decode one DynamoDB-typed attribute value."""
    if type(av) is not dict or len(av) != 1:
        if type(av) is dict and av:
            raise _Reject(f"several type tags {sorted(av)} in one attribute value")
        raise _Reject(f"not DynamoDB-typed JSON (expected {{tag: value}}, got {av!r:.60})")
    ((tag, value),) = av.items()
    if tag == "S" or tag == "B":
        if type(value) is str:
            return value
    elif tag == "N":
        return _number(value)
    elif tag == "BOOL":
        if type(value) is bool:
            return value
    elif tag == "NULL":
        if value is True:
            return None
    elif tag == "M" or tag == "L":
        if depth >= _MAX_DEPTH:
            raise _Reject(f"nested deeper than {_MAX_DEPTH} levels")
        if tag == "M" and type(value) is dict:
            return _decode_map(value, depth + 1)
        if tag == "L" and type(value) is list:
            return _decode_list(value, depth + 1)
    elif tag == "SS" or tag == "BS":
        return _strings(tag, value)
    elif tag == "NS":
        if type(value) is list:
            return [_number(v) for v in value]
    else:
        raise _Reject(f"unknown type tag {tag!r}")
    raise _Reject(f"{tag} value of the wrong JSON type ({type(value).__name__})")


def _decode_map(image: dict[str, Any], depth: int) -> dict[str, Any]:
    out = {}
    for name, av in image.items():
        try:
            out[name] = _decode(av, depth)
        except _Reject as exc:
            exc.path.append(name)
            raise
    return out


def _decode_list(values: list[Any], depth: int) -> list[Any]:
    out = []
    for i, av in enumerate(values):
        try:
            out.append(_decode(av, depth))
        except _Reject as exc:
            exc.path.append(f"[{i}]")
            raise
    return out


def _fill_row(row: dict[str, Any], image: dict[str, Any]) -> int:
    """Decode the image into row: §2.1 attributes in place, the rest into row["extra"] as JSON text.

    Returns how many §2.1 attributes carry the type tag of the contract (13 for a whole order).
    """
    extra: dict[str, Any] = {}
    matched = 0
    for name, av in image.items():
        # Inline fast paths for the S and N values that make up nearly every order; anything
        # else, or anything odd, takes the general decoder, which also words the rejection.
        try:
            ((tag, value),) = av.items()
        except (AttributeError, ValueError):
            tag = None
        try:
            if tag == "S" and type(value) is str:
                pass
            elif tag == "N" and type(value) is str:
                if (number := _numbers.get(value)) is None:
                    number = _number(value)
                value = number
            else:
                value = _decode(av, 0)
        except _Reject as exc:
            exc.path.append(name)
            raise
        expected = _CONTRACT_TAGS.get(name)
        if expected is not None:
            row[name] = value
            matched += tag == expected
        else:
            extra[name] = value
    if not extra:  # most orders: a constant, no encoding call
        row["extra"] = "{}"
        return matched
    # The same encoder as the line's, so that both builds give the same bytes (raw numbers too).
    try:
        row["extra"] = _dumps_text(extra)
    except (TypeError, ValueError) as exc:  # orjson refuses lone surrogates here, not in the line
        raise _Reject(f"cannot encode the output as UTF-8 JSON ({exc})") from None
    return matched


# --- Event time --------------------------------------------------------------------------------


# ApproximateCreationDateTime -> (event_time, dt, hour). A batch shares a few seconds, and this
# lookup is cheaper than gmtime and formatting; bounded like _numbers.
_times: dict[int | float, tuple[str, str, str]] = {}
_TIMES_MAX = 20_000


def _event_time(value: Any) -> tuple[str, str, str]:
    """(event_time, dt, hour) from ApproximateCreationDateTime (seconds, or ms above 1e11)."""
    kind = type(value)  # exact type: a bool is not a time (and True would find the entry of 1)
    if kind is not int and kind is not float:
        what = "missing" if value is None else f"{value!r:.40} is not a number"
        raise _Reject(f"dynamodb.ApproximateCreationDateTime {what}")
    times = _times.get(value)
    if times is None:
        times = _format_time(value)
        if len(_times) < _TIMES_MAX:
            _times[value] = times
    return times


def _format_time(value: float) -> tuple[str, str, str]:
    # An int and a float of equal value give the same result here, so they may share a key.
    if not math.isfinite(value):
        raise _Reject(f"dynamodb.ApproximateCreationDateTime {value!r} is not a number")
    if value > _MS_THRESHOLD:
        seconds, millis = divmod(round(value), 1000)
        fraction = f".{millis:03d}"  # a millisecond source keeps millisecond precision
    elif type(value) is int:
        seconds, fraction = value, ""
    else:  # fractional seconds (moto's streams give them): milliseconds when there are some
        seconds, millis = divmod(round(value * 1000), 1000)
        fraction = f".{millis:03d}" if millis else ""
    if not 0 <= seconds < _MAX_SECONDS:
        raise _Reject(f"dynamodb.ApproximateCreationDateTime {value!r} is out of range")
    t = time.gmtime(seconds)
    day = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    hour = f"{t.tm_hour:02d}"
    return f"{day}T{hour}:{t.tm_min:02d}:{t.tm_sec:02d}{fraction}Z", day, hour


# --- The order contract (docs/design.md §2.1) ---------------------------------------------------


class _Invalid(Exception):
    """An attribute outside the contract; the caller adds the order id."""


# Each check maps the attribute's text to what the row carries, or raises _Invalid. Quantities
# and prices repeat a lot: their answers are cached, bounded like _numbers (a text that fails is
# not cached: it is rare, and the reason is rebuilt).
_quantities: dict[str, Any] = {}
_money: dict[str, Any] = {}
_days: dict[str, bool] = {}  # "YYYY-MM-DD" -> a real calendar date in 1970-9999
_INSTANT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(\.[0-9]{1,6})?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
).fullmatch


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise _Invalid(f"N value {text!r:.60} is not a number") from None
    if not value.is_finite():
        raise _Invalid(f"N value {text!r:.60} is not a number")
    return value


def _check_quantity(text: str) -> Any:
    value = _decimal(text)
    if not 1 <= value <= _QUANTITY_MAX or value != value.to_integral_value():
        raise _Invalid(f"N value {text!r:.60} is not an integer from 1 to {_QUANTITY_MAX}")
    # Integer digits, whatever the spelling ("2.0", "1E+2"): the column is a bigint.
    return _raw_number(text if text.isdigit() else str(int(value)))


def _check_money(text: str) -> Any:
    value = _decimal(text)
    if not 0 <= value <= MONEY_MAX:
        raise _Invalid(f"N value {text!r:.60} is outside DECIMAL(12,2) from 0 to {MONEY_MAX}")
    if value != value.quantize(_CENT):  # rejected, not rounded: money is never changed silently
        raise _Invalid(f"N value {text!r:.60} has more than 2 decimal places")
    if "e" in text or "E" in text:
        return _raw_number(format(value, "f"))
    return _numbers.get(text) or _number(text)


def _calendar_day(day: str) -> bool:
    known = _days.get(day)
    if known is None:
        try:
            known = datetime.date.fromisoformat(day).year >= _MIN_YEAR
        except ValueError:
            known = False
        if len(_days) < _NUMBERS_MAX:
            _days[day] = known
    return known


def _check_instant(text: str) -> str:
    """ISO-8601 instant (docs/design.md §2.1): kept when in UTC ``Z``, else normalised to it."""
    match = _INSTANT(text)
    if match is None:
        raise _Invalid(f"{text!r:.60} is not an ISO-8601 instant YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)")
    day, zone = match[1], match[6]
    if not _calendar_day(day):
        raise _Invalid(f"{text!r:.60} is not a calendar date in the years {_MIN_YEAR}-9999")
    if zone == "Z":
        return text
    try:
        utc = datetime.datetime.fromisoformat(text).astimezone(datetime.UTC)
    except (OverflowError, ValueError):  # past year 9999 once in UTC
        utc = None
    if utc is None or not _MIN_YEAR <= utc.year <= 9999:
        raise _Invalid(f"{text!r:.60} is outside the years {_MIN_YEAR}-9999 in UTC")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (match[5] or "") + "Z"


def _cached(cache: dict[str, Any], check: Any, text: str) -> Any:
    out = cache.get(text)
    if out is None:
        out = check(text)
        if len(cache) < _NUMBERS_MAX:
            cache[text] = out
    return out


def _tagged(image: dict[str, Any], name: str, tag: str) -> Any:
    """The value of ``name`` in the image, which must be of DynamoDB type ``tag``."""
    av = image.get(name)
    if av is None:
        raise _Invalid("missing")
    value = av.get(tag)  # _fill_row has checked the shape: one tag, a value of its JSON type
    if value is None:
        (other,) = av
        raise _Invalid(f"type {other}, not {tag}")
    return value


def _check_order(row: dict[str, Any], image: dict[str, Any], image_name: str, matched: int) -> None:
    """Judge an INSERT/MODIFY image against the contract; fix up the row's spelling in place.

    Inline lookups and caches first (this runs for nearly every record); the helpers word the
    reason when something is wrong.
    """
    name = ""
    try:
        if matched != len(_CONTRACT_TAGS):  # _fill_row counted them: find which one, and say why
            for name, tag in _CONTRACT_TAGS.items():
                _tagged(image, name, tag)
        name = "status"
        if row[name] not in ORDER_STATUSES:
            raise _Invalid(f"{row[name]!r:.40} is not one of {', '.join(sorted(ORDER_STATUSES))}")
        name = "quantity"
        text = image[name]["N"]
        row[name] = _quantities.get(text) or _cached(_quantities, _check_quantity, text)
        for name in ("unit_price", "order_total"):
            text = image[name]["N"]
            row[name] = _money.get(text) or _cached(_money, _check_money, text)
        name = "created_at"
        created = row[name]
        if not (created[-1:] == "Z" and _INSTANT(created) and _days.get(created[:10])):
            row[name] = _check_instant(created)
        name = "updated_at"
        updated = row[name]
        if updated == created:  # an insert: judged just above
            row[name] = row["created_at"]
        elif not (updated[-1:] == "Z" and _INSTANT(updated) and _days.get(updated[:10])):
            row[name] = _check_instant(updated)
    except _Invalid as exc:
        reject = _Reject(str(exc))
        reject.path += [name, image_name]
        reject.order_id = row["order_id"]
        raise reject from None


# --- Records -----------------------------------------------------------------------------------


def _stream_record(data: Any) -> dict[str, Any]:
    if type(data) is not str:
        raise _Reject("record has no base64 data string")
    try:
        # strict_mode rejects characters outside the alphabet and bad padding, in C.
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _Reject(f"data is not valid base64 ({exc})") from None
    try:
        payload = _fast_loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
        # orjson refuses a few texts that the stdlib parser takes (1e400 in a field we ignore):
        # the stdlib parser has the last word, so that both builds accept the same records.
        try:
            payload = _std_loads(raw)
        except (ValueError, RecursionError) as exc:
            raise _Reject(f"data is not UTF-8 JSON ({exc})") from None
    if type(payload) is not dict:
        raise _Reject(f"data is JSON {type(payload).__name__}, not a stream record object")
    return payload


def _transform_data(data: Any) -> tuple[str, str, str]:
    """Transform one record's base64 data into (output base64, dt, hour).

    Raises an exception whose ``str`` is the reason when the record must be ProcessingFailed.
    """
    payload = _stream_record(data)
    event_name = payload.get("eventName")
    if event_name not in _EVENT_NAMES:
        raise _Reject(f"unknown eventName {event_name!r:.40}")
    source = payload.get("eventSource", "aws:dynamodb")
    if source != "aws:dynamodb":
        raise _Reject(f"eventSource {source!r:.40} is not aws:dynamodb")
    event_id = payload.get("eventID")
    if type(event_id) is not str or not event_id:
        raise _Reject("eventID missing or not a string")
    ddb = payload.get("dynamodb")
    if type(ddb) is not dict:
        raise _Reject("dynamodb section missing or not an object")
    sequence = ddb.get("SequenceNumber")
    if type(sequence) is not str or not (sequence.isascii() and sequence.isdigit()):
        raise _Reject(f"dynamodb.SequenceNumber {sequence!r:.40} is not a string of digits")
    event_time, day, hour = _event_time(ddb.get("ApproximateCreationDateTime"))

    if event_name == "REMOVE":
        image_name = "OldImage" if ddb.get("OldImage") is not None else "Keys"
    else:
        image_name = "NewImage"
    image = ddb.get(image_name)
    if type(image) is not dict:
        what = "missing" if image is None else "not an object"
        raise _Reject(f"{event_name} record: dynamodb.{image_name} {what}")

    row = _ROW_TEMPLATE.copy()
    row["event_id"] = event_id
    row["event_type"] = event_name
    row["event_time"] = event_time
    row["sequence_number"] = sequence
    row["is_deleted"] = event_name == "REMOVE"
    try:
        matched = _fill_row(row, image)
    except _Reject as exc:
        exc.path.append(image_name)
        key = image.get("order_id")
        if type(key) is dict and type(key.get("S")) is str and key["S"]:
            exc.order_id = key["S"]
        raise
    order_id = row["order_id"]
    if type(order_id) is not str or not order_id:
        what = "missing" if order_id is None else "not a non-empty S value"
        raise _Reject(f"order_id {what} in dynamodb.{image_name}")
    if event_name != "REMOVE":
        _check_order(row, image, image_name, matched)
    try:
        line = _dumps_line(row)
    except (TypeError, ValueError) as exc:  # e.g. lone surrogates, which UTF-8 cannot carry
        raise _Reject(f"cannot encode the output as UTF-8 JSON ({exc})") from None
    return binascii.b2a_base64(line, newline=False).decode("ascii"), day, hour


def transform_record(record: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """One Firehose input record to its output record, and the failure reason (None when Ok).

    Never raises for bad data; a record without ``recordId`` raises KeyError (no answer exists).
    """
    record_id = record["recordId"]
    data = record.get("data")
    try:
        out, day, hour = _transform_data(data)
    except _Reject as exc:
        reason = str(exc)
    except Exception as exc:  # a bug or an odd input must fail this record only, not the batch
        reason = f"unexpected {type(exc).__name__}: {exc}"
    else:
        return {
            "recordId": record_id,
            "result": "Ok",
            "data": out,
            "metadata": {"partitionKeys": {"dt": day, "hour": hour}},
        }, None
    return {"recordId": record_id, "result": "ProcessingFailed", "data": data}, reason


def explain_failure(data_b64: str) -> str | None:
    """Why this record's data is ProcessingFailed, or None when it transforms Ok."""
    return transform_record({"recordId": "", "data": data_b64})[1]


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, Any]]]:
    """Lambda entry point: the Firehose transformation event in, one output per record out."""
    invocation = event.get("invocationId")
    outputs = []
    failed = 0
    for record in event["records"]:
        output, reason = transform_record(record)
        if reason is not None:
            failed += 1
            logger.warning(
                json.dumps(
                    {
                        "event": "record_failed",
                        "invocationId": invocation,
                        "recordId": output["recordId"],
                        "reason": reason,
                    }
                )
            )
        outputs.append(output)
    summary = {
        "event": "transform_summary",
        "invocationId": invocation,
        "records": len(outputs),
        "ok": len(outputs) - failed,
        "dropped": 0,
        "processing_failed": failed,
    }
    # INFO may be filtered out at the runtime's log level; a batch with failures is a WARNING.
    logger.log(logging.WARNING if failed else logging.INFO, json.dumps(summary))
    return {"records": outputs}
