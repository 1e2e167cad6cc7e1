"""botocore, cheaper a call for the pipeline's clients (settings.py's sessions use it).

The JSON-protocol response parser (Glue, DynamoDB, Kinesis, Firehose, Athena), with each output
shape's walk compiled once into closures; the User-Agent header's parts memoized; and one data
loader (service models, endpoints) for every session of the process.

botocore walks a response against its shape node by node, and for every node looks its handler up
by name (`getattr(self, f"_handle_{type}")`) and re-reads the member's serialization name: a
GetPartitions page of 100 partitions cost ~11 ms of client CPU, ten times the server's share, and
the suite makes thousands (each statement of the local engine lists its tables' partitions). Here
each shape gets one closure the first time it is seen, kept on the shape object, with the same
result as botocore's `BaseJSONParser`: members in the shape's order under their member names,
`None` values left out, unknown keys dropped, null list items kept, timestamps and blobs through
the parser's own converters. What the closures do not cover (document types, tagged unions, any
handler a subclass overrides) goes through botocore's handler unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import orjson
from botocore import parsers, useragent
from botocore.model import Shape

Parse = Callable[[Any], Any]
_CACHE_ATTR = "_sales_ops_compiled"
# Compiling takes the lock and publishes a shape tree's closures only once all are complete: a
# recursive shape's closures call a forwarder that is filled in at the end of its compilation.
_LOCK = threading.Lock()


class CompiledJSONParser(parsers.JSONParser):
    """botocore's JSONParser whose `_parse_shape` runs the shape's compiled closure."""

    def _parse_body_as_json(self, body_contents: bytes) -> Any:
        # orjson: a third of the standard library's time on a page of Glue partitions. What it
        # refuses (NaN, integers past 64 bits, bad UTF-8) goes to botocore's json path as before.
        if body_contents:
            try:
                return orjson.loads(body_contents)
            except orjson.JSONDecodeError:
                pass
        return super()._parse_body_as_json(body_contents)

    def _parse_shape(self, shape: Shape, node: Any) -> Any:
        return _run(self._compiled(shape), node)

    def _key(self) -> tuple:
        # Closures made by one parser serve every parser of the same class and converters (the
        # default blob converter is a bound method: its function is what matters).
        return (type(self), self._timestamp_parser, getattr(self._blob_parser, "__func__", self._blob_parser))

    def _compiled(self, shape: Shape) -> Parse | None:
        """The shape's closure (None: the value as it is), made once per shape and converters."""
        key = self._key()
        cache = shape.__dict__.get(_CACHE_ATTR)
        if cache is not None and key in cache:
            return cache[key]
        with _LOCK:
            compiler = _Compiler(self, key)
            parse = compiler.closure(shape)
            compiler.publish()
            return parse

    def compile_shape(self, shape: Shape, compiler: _Compiler) -> Parse | None:
        kind = shape.type_name
        handler = getattr(type(self), f"_handle_{kind}", None)
        if kind == "structure" and handler is parsers.BaseJSONParser._handle_structure:
            if not shape.is_document_type and not shape.is_tagged_union:
                return _structure(
                    [
                        (name, member.serialization.get("name", name), compiler.closure(member))
                        for name, member in shape.members.items()
                    ]
                )
        elif kind == "list" and handler is parsers.ResponseParser._handle_list:
            return _list(compiler.closure(shape.member))
        elif kind == "map" and handler is parsers.BaseJSONParser._handle_map:
            return _map(compiler.closure(shape.key), compiler.closure(shape.value))
        elif handler is None:
            return None  # `_default_handle`: strings, numbers and booleans as JSON gave them
        bound = getattr(self, f"_handle_{kind}")
        return lambda node: bound(shape, node)


class _Compiler:
    """One compilation: the closures of a shape tree, published together at the end."""

    def __init__(self, parser: CompiledJSONParser, key: tuple) -> None:
        self.parser, self.key = parser, key
        # By name: botocore makes a new Shape object each time a recursive shape refers to itself.
        self.pending: dict[str, tuple[Shape, list[Any]]] = {}  # [closure, complete]

    def closure(self, shape: Shape) -> Parse | None:
        cache = shape.__dict__.get(_CACHE_ATTR)
        if cache is not None and self.key in cache:
            return cache[self.key]
        if shape.name in self.pending:
            cell = self.pending[shape.name][1]
            if cell[1]:
                return cell[0]
            return lambda node: _run(cell[0], node)  # a recursive shape: filled in below
        cell = [None, False]
        self.pending[shape.name] = (shape, cell)
        cell[0], cell[1] = self.parser.compile_shape(shape, self), True
        return cell[0]

    def publish(self) -> None:
        for shape, cell in self.pending.values():
            shape.__dict__.setdefault(_CACHE_ATTR, {})[self.key] = cell[0]


def _run(parse: Parse | None, node: Any) -> Any:
    return node if parse is None else parse(node)


def _structure(members: list[tuple[str, str, Parse | None]]) -> Parse:
    """One function per structure shape, its members unrolled: a loop over (name, key, parse)
    tuples cost twice as much on Glue's partitions (a dozen members each, most absent)."""
    lines = ["def structure(value):", "    if value is None:", "        return None", "    out = {}"]
    scope: dict[str, Any] = {}
    for i, (name, key, parse) in enumerate(members):
        scope[f"p{i}"] = parse
        lines += [f"    v = value.get({key!r})", "    if v is not None:"]
        lines.append(f"        out[{name!r}] = v" if parse is None else f"        out[{name!r}] = p{i}(v)")
    lines.append("    return out")
    exec("\n".join(lines), scope)  # names and keys come from botocore's service models, as repr()
    return scope["structure"]


def _list(member: Parse | None) -> Parse:
    if member is None:
        return lambda node: [item for item in node]  # a new list, as botocore's
    return lambda node: [None if item is None else member(item) for item in node]


def _map(key: Parse | None, value: Parse | None) -> Parse:
    if key is None and value is None:
        return lambda node: dict(node.items())  # a new dict, as botocore's
    return lambda node: {_run(key, k): _run(value, v) for k, v in node.items()}


class CompiledParserFactory(parsers.ResponseParserFactory):
    """botocore's parser factory, with the compiled parser for the `json` protocol."""

    def create_parser(self, protocol_name: str) -> parsers.ResponseParser:
        if protocol_name == "json":
            return CompiledJSONParser(**self._defaults)
        return super().create_parser(protocol_name)


def memoize_user_agent() -> None:
    """botocore builds the User-Agent header twice a request from ~16 parts, cleaning each part's
    text character by character: 15-20 % of a small call's client CPU. The cleaning is a pure
    function of its arguments (a few dozen distinct texts), so it is memoized, once per process."""
    clean = useragent.sanitize_user_agent_string_component
    if not isinstance(clean, functools._lru_cache_wrapper):
        useragent.sanitize_user_agent_string_component = functools.lru_cache(maxsize=4096)(clean)


_LOADERS: list[Any] = []  # the process's botocore data loader, once made


def share_data_loader(core: Any) -> None:
    """Give this botocore session the process's data loader. Each session made its own, and each
    of its clients then read and parsed the service's model, paginators and endpoints files from
    disk: ~70 ms of CPU a client, 5-6 clients a Settings, a Settings per test space, CLI call and
    Dagster run. The loader holds only what it read from botocore's (and boto3's) data files, by
    name (botocore already hands the same loaded dicts to every client of a session)."""
    if not _LOADERS:
        _LOADERS.append(core.get_component("data_loader"))
    core.register_component("data_loader", _LOADERS[0])


def dedupe_search_paths() -> None:
    """boto3 adds its data folder to the loader's search paths once per session: keep one."""
    for loader in _LOADERS:
        paths = loader.search_paths
        if len(paths) != len(set(paths)):
            paths[:] = list(dict.fromkeys(paths))
