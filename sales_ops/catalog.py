"""The Glue catalog: the crawler that keeps `raw_orders` current, and table/partition helpers.

On AWS the crawler is the real Glue crawler (JSON classifier, target raw/orders/, errors/ excluded).
Locally `LocalCrawler` stands in behind the same three calls (`start_crawler`, `get_crawler`,
`get_crawler_metrics`), so one `run()` drives both. The stand-in infers the schema from the JSON
lines themselves, and is incremental: it remembers the objects it has seen (in the state dir, as a
managed service keeps its own bookkeeping), samples a few new objects per new partition for the
schema, reads only the head of every other new object to catch new columns, adds only new
partitions, and never drops a column.

The helpers below (`parquet_table_input`, `put_table`, `list_partitions`, `put_partitions`, …) are
shared by the engine, the compaction and the rollups: one place that knows Glue's shapes.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import re
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sales_ops.settings import RAW_PREFIX, Settings

RAW_TABLE = "raw_orders"
RAW_PARTITION_KEYS = (("dt", "string"), ("hour", "string"))
GLUE_BATCH = 100  # BatchCreate/Update/DeletePartition take at most 100 entries (25 for delete)
GLUE_DELETE_BATCH = 25

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

_RAW_KEY = re.compile(r"^(?P<part>dt=(?P<dt>[^/]+)/hour=(?P<hour>[^/]+))/(?P<name>[^/]+)$")


class CrawlerError(RuntimeError):
    """The crawler failed or did not finish in time; the message says why."""


class CrawlerRunningError(CrawlerError):
    """start_crawler while a crawl is running (Glue's CrawlerRunningException)."""


# --- Glue shapes -------------------------------------------------------------------------------


def columns_input(columns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Name": name, "Type": type_} for name, type_ in columns]


def parquet_table_input(
    name: str, columns: list[tuple[str, str]], location: str, partition_keys: list[tuple[str, str]] = ()
) -> dict[str, Any]:
    """A Glue TableInput for an external Parquet table, as Athena's CTAS would register it.

    ZSTD: a third smaller than Snappy on orders_latest, so a third fewer bytes to scan; Athena's
    INSERT INTO honours `parquet.compression`, and the local engine does too.
    """
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "parquet.compression": "ZSTD"},
        "PartitionKeys": columns_input(list(partition_keys)),
        "StorageDescriptor": {
            "Columns": columns_input(columns),
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "Compressed": False,
            "Parameters": {"classification": "parquet"},
        },
    }


def json_table_input(
    name: str,
    columns: list[tuple[str, str]],
    location: str,
    partition_keys: list[tuple[str, str]] = (),
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Glue TableInput for JSON lines, as the crawler's JSON classifier registers it."""
    params = {"classification": "json", "compressionType": "none", "typeOfData": "file", **(parameters or {})}
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": params,
        "PartitionKeys": columns_input(list(partition_keys)),
        "StorageDescriptor": {
            "Columns": columns_input(columns),
            "Location": location,
            "InputFormat": TEXT_INPUT,
            "OutputFormat": TEXT_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                "Parameters": {"paths": ",".join(name for name, _ in columns)},
            },
            "Compressed": False,
            "Parameters": dict(params),
        },
    }


def get_table(settings: Settings, name: str, database: str | None = None) -> dict[str, Any] | None:
    """The Glue table, or None when it (or its database) does not exist."""
    glue = settings.client("glue")
    try:
        return glue.get_table(DatabaseName=database or settings.database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None


def put_table(settings: Settings, table_input: dict[str, Any], database: str | None = None) -> bool:
    """Create the table, or update it in place (one atomic call); True when it was created."""
    glue = settings.client("glue")
    database = database or settings.database
    try:
        glue.create_table(DatabaseName=database, TableInput=table_input)
        return True
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table_input)
        return False


def delete_table(settings: Settings, name: str, database: str | None = None) -> bool:
    glue = settings.client("glue")
    try:
        glue.delete_table(DatabaseName=database or settings.database, Name=name)
        return True
    except glue.exceptions.EntityNotFoundException:
        return False


def table_columns(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"].get("Columns", [])]


def partition_keys(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table.get("PartitionKeys", [])]


def list_partitions(settings: Settings, table: str, database: str | None = None) -> list[dict[str, Any]]:
    """Every partition of the table (Values, StorageDescriptor.Location, Parameters)."""
    paginator = settings.client("glue").get_paginator("get_partitions")
    out: list[dict[str, Any]] = []
    for page in paginator.paginate(DatabaseName=database or settings.database, TableName=table):
        out += page["Partitions"]
    return out


def partition_input(
    table: dict[str, Any], values: list[str], location: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """A PartitionInput inheriting the table's storage (as the crawler's InheritFromTable does)."""
    sd = {k: v for k, v in table["StorageDescriptor"].items() if k not in ("Location",)}
    return {
        "Values": list(values),
        "StorageDescriptor": {**sd, "Location": location},
        "Parameters": parameters or {},
    }


def put_partitions(settings: Settings, table: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Create or repoint partitions; each partition's swap is one atomic catalog write."""
    glue = settings.client("glue")
    name = table["Name"]
    database = table.get("DatabaseName") or settings.database
    for batch in _chunks(entries, GLUE_BATCH):
        result = glue.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=batch)
        existing = {
            tuple(err["PartitionValues"])
            for err in result.get("Errors", [])
            if err["ErrorDetail"]["ErrorCode"] == "AlreadyExistsException"
        }
        other = [e for e in result.get("Errors", []) if tuple(e["PartitionValues"]) not in existing]
        if other:
            raise RuntimeError(f"Glue refused partitions of {name}: {other[0]['ErrorDetail']}")
        updates = [
            {"PartitionValueList": e["Values"], "PartitionInput": e}
            for e in batch
            if tuple(e["Values"]) in existing
        ]
        if updates:
            result = glue.batch_update_partition(DatabaseName=database, TableName=name, Entries=updates)
            if result.get("Errors"):
                raise RuntimeError(f"Glue refused partition updates of {name}: {result['Errors'][0]}")


def delete_partitions(settings: Settings, table: str, values: list[list[str]]) -> None:
    glue = settings.client("glue")
    for batch in _chunks(values, GLUE_DELETE_BATCH):
        glue.batch_delete_partition(
            DatabaseName=settings.database,
            TableName=table,
            PartitionsToDelete=[{"Values": list(v)} for v in batch],
        )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- JSON schema inference (the JSON classifier's job) ------------------------------------------
# A type is None (only nulls seen), a scalar name, ("struct", {field: type}) or ("array", type).

_NUMERIC_RANK = {"int": 0, "bigint": 1, "double": 2}
INT_MAX = 2**31 - 1


def infer_type(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -INT_MAX - 1 <= value <= INT_MAX else "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return ("struct", {k: infer_type(v) for k, v in value.items()})
    if isinstance(value, list):
        elem = None
        for item in value:
            elem = merge_types(elem, infer_type(item))
        return ("array", elem)
    return "string"


def merge_types(a: Any, b: Any) -> Any:
    """The narrowest type holding both (int < bigint < double; conflicts become string)."""
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if isinstance(a, str) and isinstance(b, str):
        if a in _NUMERIC_RANK and b in _NUMERIC_RANK:
            return a if _NUMERIC_RANK[a] > _NUMERIC_RANK[b] else b
        return "string"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        fields = dict(a[1])
        for name, type_ in b[1].items():
            fields[name] = merge_types(fields.get(name), type_)
        return ("struct", fields)
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "array":
        return ("array", merge_types(a[1], b[1]))
    return "string"


def hive_type(type_: Any) -> str:
    """Glue/Hive spelling; unknown (null-only or empty-struct) columns are strings until seen."""
    if type_ is None:
        return "string"
    if isinstance(type_, str):
        return type_
    kind, inner = type_
    if kind == "array":
        return f"array<{hive_type(inner)}>"
    if not inner:
        return "string"
    return "struct<" + ",".join(f"{name}:{hive_type(t)}" for name, t in inner.items()) + ">"


def parse_hive_type(text: str) -> Any:
    """The inverse of hive_type for what it writes; other types (map, decimal…) stay opaque."""
    type_, rest = _parse_hive(text.replace(" ", ""))
    return type_ if not rest else text


def _parse_hive(text: str) -> tuple[Any, str]:
    if text.startswith("array<"):
        inner, rest = _parse_hive(text[len("array<") :])
        return ("array", inner), rest[1:]  # drop ">"
    if text.startswith("struct<"):
        fields: dict[str, Any] = {}
        rest = text[len("struct<") :]
        while not rest.startswith(">"):
            name, rest = rest.split(":", 1)
            fields[name], rest = _parse_hive(rest)
            rest = rest[1:] if rest.startswith(",") else rest
        return ("struct", fields), rest[1:]
    match = re.match(r"[a-z0-9_]+(\([0-9, ]+\))?", text)
    end = match.end() if match else len(text)
    return text[:end], text[end:]


def _to_json(type_: Any) -> Any:
    if isinstance(type_, tuple):
        kind, inner = type_
        if kind == "struct":
            return {"struct": [[k, _to_json(v)] for k, v in inner.items()]}
        return {"array": _to_json(inner)}
    return type_


def _from_json(data: Any) -> Any:
    if isinstance(data, dict):
        if "struct" in data:
            return ("struct", {k: _from_json(v) for k, v in data["struct"]})
        return ("array", _from_json(data["array"]))
    return data


def infer_schema(lines: list[bytes], schema: dict[str, Any]) -> None:
    """Merge the top-level fields of these JSON lines into `schema` (ordered: first seen first)."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line of a ranged read, or a bad line: neither defines columns
        if not isinstance(record, dict):
            continue
        for name, value in record.items():
            schema[name.lower()] = merge_types(schema.get(name.lower()), infer_type(value))


# --- crawlers ------------------------------------------------------------------------------------


@dataclass
class CrawlReport:
    tables_created: int = 0
    tables_updated: int = 0
    partitions_added: int = 0
    columns_added: list[str] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    state: str = "SUCCEEDED"  # or RUNNING when run(wait=False) returned before the end


class Crawler(Protocol):
    def run(self, wait: bool = True, timeout: float = 600) -> CrawlReport: ...


class _CrawlerRun:
    """`run()` over the three Glue crawler calls; subclasses supply them."""

    settings: Settings
    poll_seconds: float = 5.0

    def start_crawler(self) -> None:
        raise NotImplementedError

    def get_crawler(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_crawler_metrics(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, wait: bool = True, timeout: float = 600) -> CrawlReport:
        started = time.monotonic()
        before = _table_state(self.settings)
        try:
            self.start_crawler()
        except CrawlerRunningError:
            # Someone else's crawl is under way: let it finish, then crawl again so that what is in
            # S3 now is certainly catalogued.
            self._wait(started, timeout)
            self.start_crawler()
        if not wait:
            return CrawlReport(columns=before[0], seconds=time.monotonic() - started, state="RUNNING")
        self._wait(started, timeout)
        metrics = self.get_crawler_metrics()["CrawlerMetricsList"][0]
        columns, partitions = _table_state(self.settings)
        known = {name for name, _ in before[0]}
        return CrawlReport(
            tables_created=int(metrics.get("TablesCreated", 0)),
            tables_updated=int(metrics.get("TablesUpdated", 0)),
            partitions_added=max(0, partitions - before[1]),
            columns_added=[name for name, _ in columns if name not in known],
            columns=columns,
            seconds=time.monotonic() - started,
        )

    def _wait(self, started: float, timeout: float) -> None:
        while True:
            crawler = self.get_crawler()["Crawler"]
            if crawler["State"] == "READY":
                last = crawler.get("LastCrawl", {})
                if last.get("Status") == "FAILED":
                    raise CrawlerError(f"crawler {crawler['Name']} failed: {last.get('ErrorMessage', '?')}")
                return
            if time.monotonic() - started > timeout:
                raise CrawlerError(
                    f"crawler {crawler['Name']} still {crawler['State']} after {timeout:.0f}s; "
                    "it goes on running: check it with `aws glue get-crawler`"
                )
            time.sleep(self.poll_seconds)


def _table_state(settings: Settings) -> tuple[list[tuple[str, str]], int]:
    """(columns with partition keys last, partition count) of raw_orders, or ([], 0)."""
    table = get_table(settings, RAW_TABLE)
    if table is None:
        return [], 0
    return table_columns(table) + partition_keys(table), len(list_partitions(settings, RAW_TABLE))


class GlueCrawler(_CrawlerRun):
    """The deployed Glue crawler (infra/template.yaml: RawOrdersCrawler)."""

    def __init__(self, settings: Settings, poll_seconds: float = 5.0) -> None:
        self.settings = settings
        self.glue = settings.client("glue")
        self.poll_seconds = poll_seconds

    def start_crawler(self) -> None:
        try:
            self.glue.start_crawler(Name=self.settings.crawler)
        except self.glue.exceptions.CrawlerRunningException as exc:
            raise CrawlerRunningError(str(exc)) from exc

    def get_crawler(self) -> dict[str, Any]:
        return self.glue.get_crawler(Name=self.settings.crawler)

    def get_crawler_metrics(self) -> dict[str, Any]:
        return self.glue.get_crawler_metrics(CrawlerNameList=[self.settings.crawler])


@dataclass
class _ObjectRef:
    key: str
    partition: str  # dt=…/hour=…
    name: str
    size: int
    etag: str


class LocalCrawler(_CrawlerRun):
    """Stand-in for the Glue crawler on the emulator: same calls, crawl done in start_crawler."""

    SAMPLES_PER_PARTITION = 2  # objects read (up to SAMPLE_BYTES) for the schema of a new partition
    SAMPLE_BYTES = 1024 * 1024
    HEAD_BYTES = 16 * 1024  # every other new object: its first lines, to catch new columns cheaply

    def __init__(self, settings: Settings, poll_seconds: float = 0.2) -> None:
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.s3 = settings.client("s3", max_pool_connections=16)
        self.glue = settings.client("glue")
        self.state_file = settings.state_path("crawler", f"{settings.crawler}.json")
        self.lock_file = settings.state_path("crawler", f"{settings.crawler}.lock")

    # Glue-shaped calls ---------------------------------------------------------------------
    def start_crawler(self) -> None:
        with self._exclusive() as got:
            if not got:
                raise CrawlerRunningError(f"crawler {self.settings.crawler} is already running")
            state = self._load()
            started = datetime.now(UTC)
            try:
                metrics = self._crawl(state)
                state["last_crawl"] = {"Status": "SUCCEEDED", "StartTime": started.isoformat()}
            except Exception as exc:  # reported through get_crawler, as Glue reports a failed crawl
                metrics = {"TablesCreated": 0, "TablesUpdated": 0, "TablesDeleted": 0}
                state["last_crawl"] = {
                    "Status": "FAILED",
                    "ErrorMessage": f"{type(exc).__name__}: {exc}",
                    "StartTime": started.isoformat(),
                }
            metrics["LastRuntimeSeconds"] = (datetime.now(UTC) - started).total_seconds()
            state["metrics"] = metrics
            self._save(state)

    def get_crawler(self) -> dict[str, Any]:
        with self._exclusive() as got:
            running = not got
        last = self._load().get("last_crawl", {})
        crawler = {"Name": self.settings.crawler, "State": "RUNNING" if running else "READY"}
        if last:
            crawler["LastCrawl"] = last
        return {"Crawler": crawler}

    def get_crawler_metrics(self) -> dict[str, Any]:
        metrics = self._load().get("metrics", {})
        return {
            "CrawlerMetricsList": [
                {
                    "CrawlerName": self.settings.crawler,
                    "StillEstimating": False,
                    "TimeLeftSeconds": 0.0,
                    **metrics,
                }
            ]
        }

    # the crawl ----------------------------------------------------------------------------
    def _crawl(self, state: dict[str, Any]) -> dict[str, int]:
        table = get_table(self.settings, RAW_TABLE)
        if table is None:
            state["seen"], state["schema"] = {}, []  # the table went away: start from scratch
        objects = self._list()
        seen: dict[str, list[str]] = state.get("seen", {})
        seen_sets = {part: set(names) for part, names in seen.items()}
        new = [o for o in objects if o.name not in seen_sets.get(o.partition, ())]
        schema = {name: _from_json(t) for name, t in state.get("schema", [])}
        if table is not None:  # columns someone else added stay: never drop a column
            for name, type_ in table_columns(table):
                schema.setdefault(name, parse_hive_type(type_))
        state["objects_read"] = self._sample(new, seen_sets, schema)
        columns = [(name, hive_type(t)) for name, t in schema.items() if name not in ("dt", "hour")]
        created = updated = 0
        if columns:
            table_input = json_table_input(
                RAW_TABLE,
                columns,
                self.settings.s3_uri(RAW_PREFIX),
                list(RAW_PARTITION_KEYS),
                {"UPDATED_BY_CRAWLER": self.settings.crawler},
            )
            if table is None:
                created = int(put_table(self.settings, table_input))
            elif columns != table_columns(table):
                put_table(self.settings, table_input)
                updated = 1
            self._add_partitions({o.partition for o in objects})
        for obj in new:
            seen.setdefault(obj.partition, []).append(obj.name)
        state["seen"] = seen
        state["schema"] = [[name, _to_json(t)] for name, t in schema.items()]
        # ObjectsRead is the stand-in's own metric (Glue has none): how incremental the crawl was.
        return {
            "TablesCreated": created,
            "TablesUpdated": updated,
            "TablesDeleted": 0,
            "ObjectsRead": state.pop("objects_read"),
        }

    def _list(self) -> list[_ObjectRef]:
        out = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=RAW_PREFIX):
            for obj in page.get("Contents", []):
                match = _RAW_KEY.match(obj["Key"][len(RAW_PREFIX) :])
                # The crawler's exclusions: errors/, and files Hive ignores (_SUCCESS, .tmp…).
                if not match or "/errors/" in obj["Key"] or match["name"][0] in "_." or not obj["Size"]:
                    continue
                out.append(_ObjectRef(obj["Key"], match["part"], match["name"], obj["Size"], obj["ETag"]))
        return out

    def _sample(self, new: list[_ObjectRef], seen: dict[str, set[str]], schema: dict[str, Any]) -> int:
        """Read a few new objects per new partition fully-ish, and the head of the others."""
        per_partition: dict[str, int] = {}
        plan: list[tuple[_ObjectRef, int]] = []
        for obj in new:
            fresh_partition = obj.partition not in seen
            taken = per_partition.get(obj.partition, 0)
            if fresh_partition and taken < self.SAMPLES_PER_PARTITION:
                per_partition[obj.partition] = taken + 1
                plan.append((obj, self.SAMPLE_BYTES))
            else:
                plan.append((obj, self.HEAD_BYTES))
        with ThreadPoolExecutor(max_workers=8) as pool:
            for lines in pool.map(lambda item: self._head_lines(*item), plan):
                infer_schema(lines, schema)
        return len(plan)

    def _head_lines(self, obj: _ObjectRef, limit: int) -> list[bytes]:
        whole = obj.size <= limit
        kwargs = {} if whole else {"Range": f"bytes=0-{limit - 1}"}
        body = self.s3.get_object(Bucket=self.settings.bucket, Key=obj.key, **kwargs)["Body"].read()
        if body[:2] == b"\x1f\x8b":  # gzip (RawCompression=GZIP on AWS): inflate what we have
            body = gzip.decompress(body) if whole else zlib.decompressobj(wbits=31).decompress(body)
        lines = body.split(b"\n")
        return lines if whole else lines[:-1]  # the last line of a partial read may be torn

    def _add_partitions(self, partitions: set[str]) -> None:
        table = get_table(self.settings, RAW_TABLE)
        known = {
            "/".join(f"{k}={v}" for k, v in zip(("dt", "hour"), p["Values"], strict=True))
            for p in list_partitions(self.settings, RAW_TABLE)
        }
        entries = []
        for part in sorted(partitions - known):
            dt, hour = (kv.split("=", 1)[1] for kv in part.split("/"))
            entries.append(partition_input(table, [dt, hour], self.settings.s3_uri(f"{RAW_PREFIX}{part}/")))
        put_partitions(self.settings, table, entries)

    # bookkeeping ------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """A non-blocking lock on the lock file: False when another crawl holds it."""
        with Path(self.lock_file).open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def crawler_for(settings: Settings) -> Crawler:
    return LocalCrawler(settings) if settings.is_local else GlueCrawler(settings)
