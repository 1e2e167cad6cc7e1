"""On AWS the crawler is the real Glue crawler (JSON classifier, target raw/orders/, errors/ excluded).
Locally `LocalCrawler` stands in behind the same three calls (`start_crawler`, `get_crawler`,
`get_crawler_metrics`), so one `run()` drives both. The stand-in infers the schema from the JSON
lines themselves, and is incremental: it remembers the objects it has seen (in the state dir, as a
managed service keeps its own bookkeeping), samples a few new objects per new partition for the
schema, reads only the head of every other new object to catch new columns, adds only new
partitions, and never drops a column.
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sales_ops.catalog.glue import (
    RAW_PARTITION_KEYS,
    RAW_TABLE,
    get_table,
    json_table_input,
    list_partitions,
    partition_input,
    partition_keys,
    put_partitions,
    put_table,
    require_table,
    table_columns,
)
from sales_ops.catalog.inference import _from_json, _to_json, hive_type, infer_schema, parse_hive_type
from sales_ops.raw_objects import decode_body, decode_prefix
from sales_ops.settings import RAW_PREFIX, Settings

_RAW_KEY = re.compile(r"^(?P<part>dt=(?P<dt>[^/]+)/hour=(?P<hour>[^/]+))/(?P<name>[^/]+)$")


_ANY = object()  # a LastCrawl StartTime no crawl has: any finished crawl will do


class CrawlerError(RuntimeError):
    """The crawler failed or did not finish in time; the message says why."""


class CrawlerRunningError(CrawlerError):
    """start_crawler while a crawl is running (Glue's CrawlerRunningException)."""


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
        previous = self._last_start()
        try:
            self.start_crawler()
        except CrawlerRunningError:
            # Someone else's crawl is under way: let it finish, then crawl again so that what is in
            # S3 now is certainly catalogued.
            self._wait(started, timeout, previous=_ANY)
            previous = self._last_start()
            self.start_crawler()
        if not wait:
            return CrawlReport(columns=before[0], seconds=time.monotonic() - started, state="RUNNING")
        self._wait(started, timeout, previous)
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

    def _last_start(self) -> Any:
        return self.get_crawler()["Crawler"].get("LastCrawl", {}).get("StartTime")

    def _wait(self, started: float, timeout: float, previous: Any) -> None:
        """Until our crawl is over. Right after StartCrawler, GetCrawler may still say READY with
        the previous crawl's LastCrawl; READY counts only once the crawler was seen running or
        LastCrawl is another crawl than the one that started at `previous`."""
        seen_running = False
        while True:
            crawler = self.get_crawler()["Crawler"]
            last = crawler.get("LastCrawl", {})
            ours = seen_running or bool(last and last.get("StartTime") != previous)
            if crawler["State"] != "READY":
                seen_running = True
            elif ours:
                if last.get("Status") in ("FAILED", "CANCELLED"):
                    raise CrawlerError(
                        f"crawler {crawler['Name']} {last['Status'].lower()}: {last.get('ErrorMessage', '?')}"
                    )
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
            runtime = (datetime.now(UTC) - started).total_seconds()
            state["metrics"] = {**metrics, "LastRuntimeSeconds": runtime}
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
                # As Glue's crawler, keep the properties someone else set (partition projection).
                {**(table or {}).get("Parameters", {}), "UPDATED_BY_CRAWLER": self.settings.crawler},
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
        # gzip (RawCompression=GZIP, the default): inflate what we have
        body = decode_body(body) if whole else decode_prefix(body)
        lines = body.split(b"\n")
        return lines if whole else lines[:-1]  # the last line of a partial read may be torn

    def _add_partitions(self, partitions: set[str]) -> None:
        table = require_table(self.settings, RAW_TABLE)
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
