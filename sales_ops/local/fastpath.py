"""A fast path for the hottest JSON-protocol reads' responses: the same bytes as moto's serializer.

moto 5.2 serializes a response by walking the botocore output shape, asking its attribute picker
(six alias providers) for every member of every value and keeping a path of keys as it goes: a
GetPartitions of 400 partitions cost ~250 ms of the emulator's CPU, a GetTable ~3 ms, and the
catalog is read on every engine statement. For the operations in FAST_OPERATIONS, whose results
are plain dicts of wire names (moto's glue models' `as_dict()`), `encode` walks the same shape
with a plan worked out once per structure shape: which dict keys moto's picker would try for
each member, in its order (asked of moto's own picker, so the order is moto's), and which name
the member is written under. Values are converted as moto's JSON serializer converts them
(timestamps by moto's own converter). The dict is built in the same order and dumped by the same
`json.dumps`, so the body is byte for byte moto's (tests/test_fastpath.py compares them on a
realistic catalog). Anything else (an object rather than a dict, a value whose type moto would
coerce, a document type, a response transformer, pretty printing) raises `Unusual` and moto's
serializer answers, as before.
"""

from __future__ import annotations

import base64
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any

from moto import settings as moto_settings
from moto.core.responses import ActionResult, BaseResponse
from moto.core.serialize import (
    AttributePickerContext,
    BaseJSONSerializer,
    JSONSerializer,
    S3Serializer,
    TimestampSerializer,
    XFormedAttributePicker,
)
from moto.utilities.aws_headers import gen_amzn_requestid_long
from xmltodict import unparse  # type: ignore[import-untyped]  # moto's own XML writer

# (service, operation) pairs served by the fast path: the pipeline's hot catalog reads and listings.
GLUE_READS = ("GetDatabase", "GetDatabases", "GetTable", "GetTables", "GetPartition", "GetPartitions")
FAST_OPERATIONS = frozenset(
    {("glue", op) for op in (*GLUE_READS, "BatchGetPartition")}
    | {("s3", "ListObjectsV2"), ("s3", "ListObjects")}
)

Encoder = Callable[[Any], Any]


class Unusual(Exception):
    """A value the fast path does not reproduce exactly: moto's serializer answers instead."""


_plans: dict[tuple[str, str], Encoder] = {}  # (service, shape name) → encoder; shapes are fixed
_planning = threading.RLock()
_in_progress: set[tuple[str, str]] = set()  # shapes being planned by the thread holding _planning
# Eligible responses answered here and handed back to moto (`Unusual`), logged when the emulator
# stops: the evidence that the fast path is used (tests/test_fastpath.py reads it).
COUNTS = {"fast": 0, "moto": 0, "partitions": 0, "partitions_kept": 0}


def summary() -> str:
    return (
        f"fast path: {COUNTS['fast']} responses, {COUNTS['moto']} handed to moto's serializer; "
        f"partitions: {COUNTS['partitions']} written, {COUNTS['partitions_kept']} from their kept text"
    )


ENV_FLAG = "SALES_OPS_FASTPATH"  # "0": moto's serializer answers everything (to compare, or to rule us out)


def install() -> None:
    """Route ActionResults of FAST_OPERATIONS through `respond` (emulator process only)."""
    if getattr(ActionResult.execute_result, "_sales_ops_fast", False):
        return
    serialize = ActionResult.execute_result

    def execute_result(self: ActionResult, context: Any) -> Any:
        result = self.result
        if type(self) is ActionResult and type(result) is dict and eligible(context):
            try:
                answer = respond(context, result, getattr(self, PARTITIONS, None))
                COUNTS["fast"] += 1
                return answer
            except Unusual:
                COUNTS["moto"] += 1
        return serialize(self, context)

    execute_result._sales_ops_fast = True  # type: ignore[attr-defined]
    ActionResult.execute_result = execute_result  # type: ignore[method-assign]
    _request_id_only_in_xml()
    _partitions_named()
    _method_names_once()
    _debug_files_class_once()


def _method_names_once() -> None:
    """List a response class's methods once, not on every request.

    moto's call_action asks `inspect.getmembers` for every function of the handler class on each
    request, to see whether the action is one of them (10 % of a GetTable's CPU). A class's
    functions are fixed once the emulator's patches are in (they replace methods, add none after
    serving starts), so the list is kept per class; it is only read (`action in names`).
    """
    import moto.core.responses as responses

    listed = responses.method_names_from_class
    kept: dict[object, list[str]] = {}

    def method_names_from_class(clazz: object) -> list[str]:
        if clazz not in kept:
            kept[clazz] = listed(clazz)
        return kept[clazz]

    responses.method_names_from_class = method_names_from_class


def _debug_files_class_once() -> None:
    """Flask's debug helper (moto's apps run with debug on) without a new class per request.

    On every request without files, Flask in debug mode swaps `request.files`'s class for a
    subclass made on the spot, whose `__getitem__` explains a missing multipart enctype: a class
    creation a request (4 % of a HeadObject's CPU). The subclass is made once per original class
    here and finds its request on the instance; it raises the same errors.
    """
    from flask import debughelpers

    made: dict[type, type] = {}

    def attach_enctype_error_multidict(request: Any) -> None:
        files = request.files
        if files.__class__ not in made:
            made[files.__class__] = _explaining_files_class(files.__class__)
        files.__dict__["_sales_ops_request"] = request
        files.__class__ = made[files.__class__]

    debughelpers.attach_enctype_error_multidict = attach_enctype_error_multidict


def _explaining_files_class(oldcls: type) -> type:
    from flask.debughelpers import DebugFilesKeyError

    class newcls(oldcls):  # Flask's own subclass, made once per class
        def __getitem__(self, key: str) -> Any:
            try:
                return super().__getitem__(key)
            except KeyError as e:
                request = self.__dict__["_sales_ops_request"]
                if key not in request.form:
                    raise
                raise DebugFilesKeyError(request, key).with_traceback(e.__traceback__) from None

    newcls.__name__ = oldcls.__name__
    newcls.__module__ = oldcls.__module__
    return newcls


def _request_id_only_in_xml() -> None:
    """Skip moto's request-id substitution where it cannot match.

    moto runs `re.sub(r"(?<=<RequestId>).*(?=</RequestId>)", …)` over every response body, JSON
    included (6 % of a large GetPartitions). A body without the text `<RequestId>` has no match,
    so it is returned as it is, as re.sub would return it.
    """
    enrich = BaseResponse._enrich_response

    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:  # moto 5.2.5's steps, less the re.sub
            if "status" in headers:
                headers["status"] = str(headers["status"])
            gen_amzn_requestid_long(headers)
            return headers, body
        return enrich(headers, body)

    BaseResponse._enrich_response = staticmethod(enrich_response)  # type: ignore[method-assign]


def eligible(context: Any) -> bool:
    """A plain JSON-protocol answer of a listed operation, with nothing that changes moto's output."""
    service = context.service_model.service_name
    return (
        context.serializer_class in (JSONSerializer, S3Serializer)
        and (service, context.operation_model.name) in FAST_OPERATIONS
        and not moto_settings.PRETTIFY_RESPONSES
        and not getattr(context.response, "RESPONSE_KEY_PATH_TO_TRANSFORMER", None)
    )


def respond(
    context: Any, result: dict, partitions: tuple[list, Texts] | None = None
) -> tuple[int, dict[str, str], str]:
    """Status, headers and body as moto's serializer gives them for this result (`partitions`: the
    FakePartitions whose `as_dict()` are result["Partitions"], in order, when the handler says, and
    where their texts are kept)."""
    if context.serializer_class is S3Serializer:
        return respond_xml(context, result)
    operation = context.operation_model
    shape = operation.output_shape
    service = context.service_model.service_name
    version = context.service_model.metadata.get("jsonVersion", "1.0")
    status = operation.http.get("responseCode", 200)
    headers = {"Content-Type": f"application/x-amz-json-{version}"}
    if partitions is not None and shape is not None:
        return status, headers, _partitions_text(service, shape, result, partitions)
    body = encoder(service, shape)(result) if shape is not None else {}
    return status, headers, json.dumps(body)


# --- Glue partitions: each one's JSON text written once ----------------------------------------
# A GetPartitions of 100 partitions cost ~9 ms of the emulator's CPU, two thirds of it walking the
# ~22 structures of each partition and `json.dumps` writing them, for partitions that had not
# changed since the last call (the engine reads a table's partitions on every statement). moto's
# FakePartition never changes once made: CreatePartition, UpdatePartition and their batch forms
# make a new one (moto 5.2.5's glue/models.py assigns its attributes in __init__ only; its input
# dicts, parsed from the request, are not written to after), and a snapshot's restore makes new
# objects. So the text of a partition's `as_dict()` is kept per object (weakly: a partition moto
# drops takes its text with it), and the body is joined from the texts as `json.dumps` joins a
# dict and a list with its default separators: the same bytes.
# GetPartitions' ExcludeColumnSchema (the local engine's reads: it needs the locations only) gives
# each partition without StorageDescriptor.Columns, as Glue does: texts kept apart.
PARTITIONS = "_sales_ops_partitions"  # an ActionResult's attribute: its FakePartitions and texts
PARTITION_TEXTS_KEPT = 200_000  # past this many, a partition's text is written each time
Texts = weakref.WeakKeyDictionary[Any, str]
_partition_texts: Texts = weakref.WeakKeyDictionary()
_partition_texts_no_columns: Texts = weakref.WeakKeyDictionary()


def _partitions_named() -> None:
    """Glue GetPartitions and BatchGetPartition name the FakePartitions behind their answer (for
    `_partitions_text`); their results are the same dicts as moto's handlers return."""
    from moto.glue.exceptions import PartitionNotFoundException
    from moto.glue.responses import GlueResponse

    def listed(partitions: list, columns: bool = True) -> ActionResult:
        values = [p.as_dict() for p in partitions]
        if not columns:
            values = [_without_columns(v) for v in values]
        answer = ActionResult({"Partitions": values})
        kept = _partition_texts if columns else _partition_texts_no_columns
        setattr(answer, PARTITIONS, (partitions, kept))
        return answer

    def get_partitions(self: GlueResponse) -> ActionResult:  # moto's handler, the objects kept
        params: dict[str, Any] = self.parameters
        database, table, expression = (
            params.get("DatabaseName"),
            params.get("TableName"),
            params.get("Expression"),
        )
        found = self.glue_backend.get_partitions(database, table, expression)  # type: ignore[arg-type]
        return listed(found, columns=not params.get("ExcludeColumnSchema"))

    def batch_get_partition(self: GlueResponse) -> ActionResult:  # moto's backend method, inlined
        params: dict[str, Any] = self.parameters
        table = self.glue_backend.get_table(params.get("DatabaseName"), params.get("TableName"))  # type: ignore[arg-type]
        partitions = []
        for values in params.get("PartitionsToGet"):  # type: ignore[union-attr]  # None: TypeError, as moto
            try:
                partitions.append(table.get_partition(values=values["Values"]))
            except PartitionNotFoundException:
                continue
        return listed(partitions)

    GlueResponse.get_partitions = get_partitions  # type: ignore[method-assign]
    GlueResponse.batch_get_partition = batch_get_partition  # type: ignore[method-assign]


def _without_columns(value: dict) -> dict:
    sd = value.get("StorageDescriptor")
    if not isinstance(sd, dict) or "Columns" not in sd:
        return value
    return {**value, "StorageDescriptor": {k: v for k, v in sd.items() if k != "Columns"}}


def _partitions_text(service: str, shape: Any, result: dict, named: tuple[list, Texts]) -> str:
    """`json.dumps` of the encoded result, each partition's text taken from the kept texts."""
    partitions, kept = named
    values = result["Partitions"]
    if len(values) != len(partitions) or "Partitions" not in shape.members:
        raise Unusual("partitions")
    rest = encoder(service, shape)({**result, "Partitions": []})  # the other members, in moto's order
    if "Partitions" not in rest:
        raise Unusual("partitions")
    encode = encoder(service, shape.members["Partitions"].member)
    texts = []
    for partition, value in zip(partitions, values, strict=True):
        text = kept.get(partition)
        if text is None:
            if value is None:
                raise Unusual("a None partition")
            text = json.dumps(encode(value))
            if len(kept) < PARTITION_TEXTS_KEPT:
                kept[partition] = text
        else:
            COUNTS["partitions_kept"] += 1
        texts.append(text)
    COUNTS["partitions"] += len(texts)
    listing = "[" + ", ".join(texts) + "]"
    members = (f"{json.dumps(k)}: {listing if k == 'Partitions' else json.dumps(v)}" for k, v in rest.items())
    return "{" + ", ".join(members) + "}"


def encoder(service: str, shape: Any) -> Encoder:
    """The encoder of a shape, by type; a structure's is planned once per service and name."""
    kind = shape.type_name
    if kind == "structure":
        key = (service, shape.name)
        if key not in _plans:
            with _planning:  # one thread plans; others see only finished plans
                if key in _in_progress:  # a recursive shape meets itself: look it up when used
                    return lambda value: _plans[key](value)
                if key not in _plans:
                    _in_progress.add(key)
                    try:
                        _plans[key] = _structure(service, shape)
                    finally:
                        _in_progress.discard(key)
        return _plans[key]
    if kind == "list":
        return _list(service, shape)
    if kind == "map":
        return _map(service, shape)
    if kind == "timestamp":
        return _timestamp(shape)
    return _SCALARS.get(kind, _refuse)


def _structure(service: str, shape: Any) -> Encoder:
    if shape.is_document_type:
        return _refuse
    plan = []
    for name, member in shape.members.items():
        member.parent = shape  # as moto's serializer sets it: its alias providers read it
        out = member.serialization.get("name", name)
        plan.append((_picked_keys(member, name), out, encoder(service, member)))

    def encode(value: Any) -> dict:
        if type(value) is not dict:  # an object: moto's picker reads attributes, snake_case…
            raise Unusual(type(value).__name__)
        out: dict[str, Any] = {}
        for keys, name, encode_member in plan:
            for key in keys:
                if key in value:
                    if value[key] is not None:
                        out[name] = encode_member(value[key])
                    break
        return out

    return encode


def _picked_keys(member: Any, name: str) -> tuple[str, ...]:
    """The dict keys moto's picker tries for this member, in its order (it asks nothing of a plain
    dict but its class, so one answer holds for every dict)."""
    context = AttributePickerContext(obj={}, key=name, shape=member)
    keys = tuple(XFormedAttributePicker().get_possible_keys(context))
    if any("." in key for key in keys):  # moto would read a dotted key as a path
        raise Unusual(f"dotted key among {keys}")
    return keys


def _list(service: str, shape: Any) -> Encoder:
    member = shape.member
    if member.serialization.get("name", member.name) != member.name:
        return _refuse  # moto would append the raw item: not worth reproducing
    encode_item = encoder(service, member)

    def encode(value: Any) -> list:
        if type(value) is not list or None in value:
            raise Unusual("not a list of values")
        return [encode_item(item) for item in value]

    return encode


def _map(service: str, shape: Any) -> Encoder:
    value_shape = shape.value
    if "name" in value_shape.serialization:
        return _refuse  # moto would write every entry under that one name
    encode_value = encoder(service, value_shape)
    nullable = value_shape.type_name == "string"  # moto keeps a None string, drops a None structure

    def encode(value: Any) -> dict:
        if type(value) is not dict:
            raise Unusual("not a dict")
        out = {}
        for key, item in value.items():
            if type(key) is not str or (item is None and not nullable):
                raise Unusual("map entry")
            out[key] = None if item is None else encode_value(item)
        return out

    return encode


def _refuse(value: Any) -> Any:
    raise Unusual(type(value).__name__)


def _string(value: Any) -> str:
    if type(value) is not str:  # moto would str() it (enums, numbers): leave that to moto
        raise Unusual(type(value).__name__)
    return value


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise Unusual(type(value).__name__)
    return value


def _double(value: Any) -> float:
    if type(value) not in (int, float):
        raise Unusual(type(value).__name__)
    return float(value)


def _boolean(value: Any) -> bool:
    if type(value) is not bool:  # moto passes any value through as it is
        raise Unusual(type(value).__name__)
    return value


def _blob(value: Any) -> str:
    if type(value) not in (bytes, str):
        raise Unusual(type(value).__name__)
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).strip().decode("utf-8")


def _timestamp(shape: Any) -> Encoder:
    """moto's own conversion, in the shape's format (JSON's default: epoch seconds)."""
    fmt = shape.serialization.get("timestampFormat", BaseJSONSerializer.DEFAULT_TIMESTAMP_FORMAT)
    stamps = TimestampSerializer(BaseJSONSerializer.DEFAULT_TIMESTAMP_FORMAT)
    return lambda value: stamps._convert_timestamp_to_str(value, fmt)


_SCALARS: dict[str, Encoder] = {
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _double,
    "double": _double,
    "boolean": _boolean,
    "blob": _blob,
}


# --- S3's REST-XML listings ------------------------------------------------------------------
# moto's RestXMLSerializer builds a dict of the same shape walk (booleans as "true"/"false",
# flattened lists under the member's name, the namespace last) and hands it to xmltodict: the
# walk is reproduced here and the same dict goes to the same `unparse` call (S3Serializer's).
OMIT = object()  # an encoder's answer for "no element at all" (an empty flattened list)


def respond_xml(context: Any, result: dict) -> tuple[int, dict[str, str], str]:
    operation = context.operation_model
    shape = operation.output_shape
    body: dict[str, Any] = {}
    for keys, name, member, encode_member in _xml_plan(context.service_model.service_name, shape):
        value = _pick(result, keys)
        if value is None:
            continue
        if member.is_not_bound_to_body:  # a header member (RequestCharged): moto's header serializer
            raise Unusual(name)
        out = encode_member(value)
        if out is not OMIT:
            body[name] = out
    if "xmlNamespace" in operation.metadata:
        body["@xmlns"] = operation.metadata["xmlNamespace"]
    wrapper = {shape.serialization.get("resultWrapper", f"{operation.name}Response"): body}
    text = unparse(wrapper, full_document=True, pretty=False, short_empty_elements=True)
    return operation.http.get("responseCode", 200), {"Content-Type": S3Serializer.CONTENT_TYPE}, text


def _pick(value: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in value:
            return value[key]
    return None


def _xml_plan(service: str, shape: Any) -> list[tuple[tuple[str, ...], str, Any, Encoder]]:
    """Per member: the keys moto's picker tries, the element name, the shape and its encoder."""
    key = ("xml", f"{service}:{shape.name}")
    if key not in _xml_plans:
        plan = []
        for name, member in shape.members.items():
            member.parent = shape
            plain = not ({"xmlNamespace", "xmlAttribute"} & set(member.serialization))
            encode = _xml_encoder(service, member) if plain else _refuse
            plan.append((_picked_keys(member, name), member.serialization.get("name", name), member, encode))
        _xml_plans[key] = plan
    return _xml_plans[key]


_xml_plans: dict[tuple[str, str], list] = {}


def _xml_encoder(service: str, shape: Any) -> Encoder:
    kind = shape.type_name
    if kind == "structure":
        return _xml_structure(service, shape)
    if kind == "list":
        return _xml_list(service, shape)
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", S3Serializer.DEFAULT_TIMESTAMP_FORMAT)
        stamps = TimestampSerializer(S3Serializer.DEFAULT_TIMESTAMP_FORMAT)
        return lambda value: stamps._convert_timestamp_to_str(value, fmt)
    return _XML_SCALARS.get(kind, _refuse)


def _xml_structure(service: str, shape: Any) -> Encoder:
    def encode(value: Any) -> dict:
        if type(value) is not dict:
            raise Unusual(type(value).__name__)
        out: dict[str, Any] = {}
        for keys, name, member, encode_member in _xml_plan(service, shape):
            item = _pick(value, keys)
            if item is not None:
                if member.is_not_bound_to_body:
                    raise Unusual(name)
                encoded = encode_member(item)
                if encoded is not OMIT:
                    out[name] = encoded
        return out

    return encode


def _xml_list(service: str, shape: Any) -> Encoder:
    member = shape.member
    if not shape.is_flattened or {"xmlNamespace", "xmlAttribute", "name"} & set(member.serialization):
        return _refuse  # S3's lists are flattened: the wrapped kind is left to moto
    encode_item = _xml_encoder(service, member)

    def encode(value: Any) -> Any:
        if type(value) is not list or None in value:
            raise Unusual("not a list of values")
        items = [out for out in map(encode_item, value) if out is not OMIT and out != {}]
        return items or OMIT  # moto writes no element for an empty flattened list

    return encode


def _xml_boolean(value: Any) -> str:
    if type(value) not in (bool, str):
        raise Unusual(type(value).__name__)
    return "true" if value is True or str(value).lower() == "true" else "false"


_XML_SCALARS: dict[str, Encoder] = {
    "string": _string,  # the same check as for JSON
    "integer": _integer,
    "long": _integer,
    "boolean": _xml_boolean,
}
