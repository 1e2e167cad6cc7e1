"""The emulator process: a moto server on 127.0.0.1 whose state survives restarts.

moto keeps everything in memory. Its backends pickle, so this process restores a snapshot before the
server starts, snapshots periodically and on SIGTERM, always written atomically (tmp + rename).
Between snapshots every acknowledged write is in the write-ahead journal (see `journal.py`),
replayed over the snapshot at start, so a SIGKILL loses nothing that was acknowledged.
Run as `python -m sales_ops.local.emulator --port 4566 --state-dir .sales-ops`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from sales_ops.guard import foreign_origin, loopback_host, normal_origin
from sales_ops.local import export, fastpath, glue_crawlers, glue_versions, headers
from sales_ops.local.faults import ENV_FLAG, FaultInjector, faults_path
from sales_ops.local.journal import (
    JOURNAL_DIR,
    Journal,
    JournalCorrupt,
    JournaledApp,
    install_determinism,
    read_entries,
)
from sales_ops.local.keepalive import KeepAliveHandler
from sales_ops.settings import DEFAULT_STATE_DIR

log = logging.getLogger("sales_ops.emulator")

# Services whose state the pipeline owns; all were seen to pickle and restore (docs/design.md §5).
PERSISTED_SERVICES = ("dynamodb", "dynamodbstreams", "s3", "kinesis", "glue", "firehose", "pipes", "iam")
SNAPSHOT_FILE = "emulator.snapshot"


def snapshot_path(state_dir: Path) -> Path:
    return state_dir / SNAPSHOT_FILE


def _backend(service: str) -> Any:
    import moto.backends

    return moto.backends.get_backend(service)  # type: ignore[call-overload]  # typed per literal name


def restore(state_dir: Path) -> tuple[list[str], int]:
    """Load the snapshot (if any) into moto's backends.

    Returns the services restored and the sequence number of the last journal entry the snapshot
    holds (0 for none, or for a snapshot written before the journal existed).
    """
    path = snapshot_path(state_dir)
    if not path.exists():
        return [], 0
    with path.open("rb") as fh:
        saved: dict[str, Any] = pickle.load(fh)
    services: dict[str, Any] | None = saved.get("services")
    journal_seq = saved.get("journal_seq", 0)
    if services is None:  # the format before the journal: {service: backend}
        services, journal_seq = saved, 0
    for service, backend in services.items():
        live = _backend(service)
        live.clear()
        live.update(backend)
    return sorted(services), int(journal_seq)


def snapshot(state_dir: Path, journaled: JournaledApp | None = None, attempts: int = 5) -> int:
    """Write every persisted backend to disk atomically; returns the snapshot's size in bytes.

    With a journal, the backends are pickled inside its apply lock (no write in between) and the
    journal is cut there; the segments before the cut are deleted only once the snapshot is on
    disk. Reads may still touch a backend's dicts while it is pickled ("dictionary changed
    size"), so a failed attempt is retried; the previous snapshot stays until a new one is complete.
    """
    path = snapshot_path(state_dir)
    tmp = path.with_suffix(".tmp")
    lock = journaled.lock if journaled else contextlib.nullcontext()
    for attempt in range(1, attempts + 1):
        try:
            with lock:
                state = {svc: _backend(svc) for svc in PERSISTED_SERVICES}
                seq = journaled.journal.rotate() if journaled else 0
                payload = pickle.dumps({"services": state, "journal_seq": seq})
            break
        except RuntimeError as exc:
            log.warning("snapshot attempt %d failed: %s", attempt, exc)
            time.sleep(0.05 * attempt)
    else:
        raise RuntimeError(f"could not snapshot the emulator after {attempts} attempts")
    # The whole database: readable by its owner only (0600, whatever the umask), like the journal.
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if journaled:
        journaled.journal.drop_through(seq)
    return len(payload)


_STREAM_LOCK = threading.Lock()
_KINESIS_LOCK = threading.Lock()


def install_patches() -> None:
    """Our changes to moto's behaviour, applied only inside the emulator process."""
    _serialize_stream_appends()
    _fast_stream_get_records()
    _safe_kinesis_shards()
    _fast_kinesis_put_records()
    _backend_per_host_once()
    _serializer_memos()
    if os.environ.get(fastpath.ENV_FLAG) != "0":
        fastpath.install()  # the hot catalog reads' responses without moto's serializer (same bytes)
    export.install()  # ExportTableToPointInTime writing AWS's real layout (sales_ops/local/export.py)
    glue_versions.install()  # UpdateTable's SkipArchive and the per-table version limit
    glue_crawlers.install()  # GetCrawlerMetrics, which moto lacks
    headers.install()  # plain request headers read without email.parser (the same messages)


def _serialize_stream_appends() -> None:
    """Make DynamoDB stream appends atomic, so sequence numbers are unique and in list order.

    moto computes `seq = len(items) + start`, builds the record, then appends, with no lock: two
    concurrent writes got the same sequence number (seen in tests/test_pipeline.py), and since
    its iterators use the number as a list index, a resume from a checkpoint could skip or repeat
    records. DynamoDB guarantees unique, increasing numbers per shard; this restores that.
    """
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamShard

    unlocked_add = StreamShard.add

    def add(self: StreamShard, old: Item | None, new: Item | None) -> None:
        with _STREAM_LOCK:
            unlocked_add(self, old, new)

    StreamShard.add = add  # type: ignore[method-assign]  # the patch (this whole module's purpose)


EXPIRED_ITERATOR = "the shard iterator is not known to the emulator (restarted since?): get a new one"


def _fast_stream_get_records() -> None:
    """Serve DynamoDB Streams GetRecords with a direct JSON dump instead of moto's serializer.

    moto 5.2 serializes responses by walking the botocore model, which for GetRecords (hundreds
    of nested AttributeValue maps) costs ~1.3 ms a record and capped the whole local path near
    700 changes/s. The records moto stores are already in wire shape; only the creation time is
    a naive UTC datetime, sent as epoch seconds with milliseconds exactly as moto's serializer
    does. Same bytes on the wire, measured: see bench/bench_pipeline.py.

    An iterator the emulator does not hold (GetShardIterator is a read, so not journaled: after a
    restart the iterators handed out since the last snapshot are gone) is refused as DynamoDB
    Streams refuses one past its 15 minutes, ExpiredIteratorException (400), not moto's KeyError
    (500, which botocore retried four times with backoff, several seconds, before the reader
    could open a new one).
    """
    from datetime import UTC, datetime

    from moto.core.exceptions import JsonRESTError
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    def encode(value: object) -> float:
        if isinstance(value, datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
            return round(stamp.timestamp(), 3)
        raise TypeError(f"cannot encode {type(value).__name__}")

    def get_records(self: DynamoDBStreamsHandler) -> str:
        limit = self._get_param("Limit") or 1000
        iterator = self._get_param("ShardIterator")
        if iterator not in self.backend.shard_iterators:
            raise JsonRESTError("ExpiredIteratorException", EXPIRED_ITERATOR)
        result = self.backend.get_records(iterator, limit)
        return json.dumps(result, default=encode)

    # moto's handlers also accept a body string in place of an ActionResult.
    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign,assignment]


def _safe_kinesis_shards() -> None:
    """Make moto's Kinesis shards thread-safe and O(1) per record.

    moto's Shard (its own comment: "not safe for concurrency") builds a list of every key to
    find the last sequence number on each put, and scans from the shard's first record on each
    read: both grow with the stream, so a 20k-record backlog drained at a third of the rate of a
    small one. Reads also iterated the dict while puts grew it ("OrderedDict mutated during
    iteration" → HTTP 500 → client retries), and two concurrent puts could take the same number.
    moto numbers a shard's records 1, 2, 3…, so reads can go straight to the next number.
    """
    from moto.kinesis.models import Record, Shard

    def last(self: Shard) -> int:
        return next(reversed(self.records), 0)

    def first(self: Shard) -> int:
        return next(iter(self.records), 0)

    def put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
        with _KINESIS_LOCK:
            sequence_number = last(self) + 1
            self.records[sequence_number] = Record(partition_key, data, sequence_number, explicit_hash_key)
        return str(sequence_number)

    def get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list, int, int]:
        with _KINESIS_LOCK:
            after, newest = int(last_sequence_id), last(self)
            start = max(after + 1, first(self))
            stop = newest + 1 if limit is None else min(newest + 1, start + limit)
            if newest - first(self) + 1 == len(self.records):
                results = [self.records[n] for n in range(start, stop)]
            else:  # numbering with gaps (never seen): scan, as moto does
                results = [r for n, r in self.records.items() if n > after][: stop - start]
            if not results:
                return [], after, 0
            behind = self.records[newest].created_at - results[-1].created_at
            return results, results[-1].sequence_number, int(behind * 1000)

    Shard.get_max_sequence_number = last  # type: ignore[method-assign]
    Shard.get_min_sequence_number = first  # type: ignore[method-assign]
    Shard.put_record = put_record  # type: ignore[method-assign]
    Shard.get_records = get_records  # type: ignore[method-assign]


def _fast_kinesis_put_records() -> None:
    """Answer Kinesis PutRecords with a direct JSON dump (only strings and ints in it).

    Same reason as above: moto's model-driven serializer took ~45% of a 500-record call.
    """
    from moto.kinesis.responses import KinesisResponse

    def put_records(self: KinesisResponse) -> str:
        response = self.kinesis_backend.put_records(
            self._get_param("StreamARN"), self._get_param("StreamName"), self._get_param("Records")
        )
        return json.dumps(response)

    KinesisResponse.put_records = put_records  # type: ignore[method-assign,assignment]  # a body string


def _remembered(memo: dict, key: Any, work: Callable[[], Any], limit: int) -> Any:
    """`work()`'s answer for `key`, kept in `memo` while it holds fewer than `limit` answers (past
    that, worked out each time as before the patch)."""
    if key in memo:
        return memo[key]
    answer = work()
    if len(memo) < limit:
        memo[key] = answer
    return answer


BACKEND_HOSTS_KEPT = 256  # host names whose backend is remembered (a few are ever seen)


def _backend_per_host_once() -> None:
    """Find the backend for a request's host name once, not on every request.

    moto's dispatcher (`get_backend_for_host`) lists moto's package directory (~200 entries, an
    `isdir` each) and then tries its URL patterns in turn, on every request and inside the
    dispatcher's one lock: 0.4 to 1.8 ms a request, measured, with every other request waiting.
    The answer depends on the host name alone (moto's modules and patterns are fixed once
    imported), so it is kept per host name; at most BACKEND_HOSTS_KEPT of them (the name comes
    from the request's credential scope), past which the rest are looked up as before.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lookup = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        known: dict[str | None, Any] = self.__dict__.setdefault("_sales_ops_backends", {})
        return _remembered(known, host, lambda: lookup(self, host), BACKEND_HOSTS_KEPT)

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


SERIALIZER_MEMO_KEPT = 65536  # answers kept per memo below (small tuples and strings)


def _serializer_memos() -> None:
    """Two answers of moto's response serializer worked out once, not for every value it writes.

    moto serializes each response member by asking its attribute picker which keys may hold the
    value (six alias providers, each built afresh and asked in turn) and by parsing each stored
    timestamp string back into a datetime (dateutil) before formatting it: 80 % of a GetPartitions
    or ListObjectsV2 answer's time, measured (a listing of 50 objects 16-30 ms). The keys depend
    only on the picker, the object's class, the member's name and its shape (name, parent, the
    service's model; the providers read nothing else), and a timestamp's text only on the value and
    the format: both are kept, up to SERIALIZER_MEMO_KEPT each, the rest worked out as before.
    """
    from moto.core import serialize

    def memo_keys(cls: Any) -> None:
        keys_of = cls.get_possible_keys
        kept: dict[tuple, tuple[str, ...]] = {}

        def get_possible_keys(self: Any, context: Any) -> Any:
            shape = context.shape
            parent = getattr(shape, "parent", None)
            key = (
                cls,
                tuple(self.alias_providers),
                type(context.obj),
                context.key,
                context.service_model.service_name if context.service_model else None,
                getattr(shape, "name", None),
                getattr(parent, "name", None),
            )
            return _remembered(kept, key, lambda: tuple(keys_of(self, context)), SERIALIZER_MEMO_KEPT)

        cls.get_possible_keys = get_possible_keys

    # The subclass's own method calls the base's through super(): memoized on its own class too.
    memo_keys(serialize.AttributePicker)
    memo_keys(serialize.XFormedAttributePicker)

    convert = serialize.TimestampSerializer._convert_timestamp_to_str
    texts: dict[tuple, Any] = {}

    def convert_timestamp(self: Any, value: Any, timestamp_format: str) -> Any:
        if not isinstance(value, str | int | float):  # a datetime: no parsing to save
            return convert(self, value, timestamp_format)
        key = (type(value), value, timestamp_format)

        def text() -> Any:
            return convert(self, value, timestamp_format)  # type: ignore[arg-type]  # a float too

        return _remembered(texts, key, text, SERIALIZER_MEMO_KEPT)

    serialize.TimestampSerializer._convert_timestamp_to_str = convert_timestamp  # type: ignore[method-assign]


ALLOWED_ORIGINS_ENV = "SALES_OPS_ALLOWED_ORIGINS"
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain")
MIB = 1024 * 1024
# Request body caps, per protocol, above what AWS itself accepts for the pipeline's calls: JSON
# protocols (DynamoDB BatchWriteItem takes 16 MB, Kinesis PutRecords 10 MiB, Firehose
# PutRecordBatch 4 MiB), S3 objects (a single PUT may be 5 GiB on AWS; the emulator holds a body in
# memory and journals it, and nothing here writes objects near this size), the rest (IAM's query
# protocol, Pipes' REST calls) small. A bigger body is refused before it is read.
BODY_CAPS = {"json": 20 * MIB, "s3": 256 * MIB, "other": 1 * MIB}
# moto's control API (/moto-api/: reset, recorder, seed, state manager…) is refused: it can wipe
# the state or write files into the working directory. One entry is let through: canned Athena
# results, which tests/test_engine.py sets to drive the AthenaEngine against moto (memory only).
MOTO_API_ALLOWED = frozenset({"/moto-api/static/athena/query-results"})


def body_kind(environ: dict) -> str:
    """Which cap applies: the JSON protocols name an X-Amz-Target; S3 is signed for service s3."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    signed = environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
    if "/s3/aws4_request" in signed or "%2Fs3%2Faws4_request" in signed:
        return "s3"
    return "other"


def allowed_origins(env: dict[str, str] | None = None) -> frozenset[str]:
    """Origins allowed to call the emulator from a browser: none, unless listed (comma-separated)."""
    raw = (os.environ if env is None else env).get(ALLOWED_ORIGINS_ENV, "")
    return frozenset(normal_origin(o) for o in raw.split(",") if o.strip())


class LocalOnlyMiddleware:
    """Refuse what a web page in the user's browser could send to the emulator.

    Loopback binding does not stop the user's own browser: any page can send requests to
    127.0.0.1, and moto answers preflights by echoing the Origin. As LocalStack does (its CORS
    enforcement, relaxed only by DISABLE_CORS_CHECKS / EXTRA_CORS_ALLOWED_ORIGINS), a request is
    refused with 403 when
    - its Host is not 127.0.0.1/localhost/[::1] (DNS rebinding);
    - it carries an Origin (or, without one, a Referer) that is not in the allowed list (none by
      default; SALES_OPS_ALLOWED_ORIGINS adds some) or `Sec-Fetch-Site: cross-site`. SDKs and the
      CLI send none of these;
    - it is a form POST (multipart/urlencoded/text/plain) without an `Authorization` header:
      browsers send those without a preflight. boto3 sends urlencoded POSTs for the query-protocol
      services (SNS, IAM, STS), always signed; a browser cannot add `Authorization` to a
      cross-origin request without a preflight, which the Origin rule above refuses.
    Preflights (OPTIONS) from allowed origins are still answered by moto; from others, 403 with
    no Access-Control-Allow-* header.
    """

    def __init__(self, app: WSGIApplication, origins: frozenset[str] | None = None) -> None:
        self.app = app
        self.origins = allowed_origins() if origins is None else origins

    def refusal(self, environ: dict) -> str | None:
        if not loopback_host(environ.get("HTTP_HOST", "")):
            return "Host header is not 127.0.0.1/localhost"
        wsgi = {"origin": "HTTP_ORIGIN", "referer": "HTTP_REFERER", "sec-fetch-site": "HTTP_SEC_FETCH_SITE"}
        headers = {key: environ[name] for key, name in wsgi.items() if name in environ}
        foreign = foreign_origin(headers, self.origins)
        if foreign:
            return f"{foreign} ({ALLOWED_ORIGINS_ENV} lists allowed origins)"
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        signed = "HTTP_AUTHORIZATION" in environ
        if environ.get("REQUEST_METHOD") == "POST" and content_type in FORM_TYPES and not signed:
            return f"form POST ({content_type}) refused: browsers send these without a preflight"
        return None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        reason = self.refusal(environ)
        if reason is not None:
            return _refuse(environ, start_response, "403 Forbidden", "AccessDeniedException", reason)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api") and path not in MOTO_API_ALLOWED:
            reason = "moto's control API is not served by the embedded AWS"
            return _refuse(environ, start_response, "403 Forbidden", "AccessDeniedException", reason)
        too_big = _oversized_body(environ)
        if too_big is not None:
            return _refuse(
                environ, start_response, "413 Request Entity Too Large", "RequestEntityTooLarge", too_big
            )
        return self.app(environ, start_response)


def _oversized_body(environ: Any) -> str | None:
    """Why the body is over its cap, or None; a chunked body is read here, up to the cap."""
    kind = body_kind(environ)
    cap = BODY_CAPS[kind]
    message = f"request body over the emulator's {cap // MIB} MiB limit for {kind} requests"
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        return message if int(length) > cap else None
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return None
    from werkzeug.wsgi import get_input_stream

    body = get_input_stream(environ, max_content_length=None).read(cap + 1)
    if len(body) > cap:
        return message
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return None


def _refuse(environ: Any, start_response: StartResponse, status: str, kind: str, reason: str) -> list[bytes]:
    log.warning("refused %s %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), reason)
    body = json.dumps({"__type": kind, "message": reason}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers + ([("Connection", "close")] if status.startswith("413") else []))
    return [body]


def bind_server(port: int, app: WSGIApplication | None = None) -> BaseWSGIServer:
    """moto's WSGI app (or `app` wrapping it) on 127.0.0.1 only, behind LocalOnlyMiddleware (outermost,
    so that a refused request is never journaled).

    Bound here rather than through moto's ThreadedMotoServer, whose start() waits without a
    timeout for a thread that dies when the port is taken, leaving the process hanging. Served
    with HTTP/1.1 keep-alive (`keepalive.py`): werkzeug's own handler closes every connection.
    """
    app = LocalOnlyMiddleware(app or DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=KeepAliveHandler)
    server.block_on_close = False  # type: ignore[attr-defined]  # idle keep-alive threads: not waited for
    return server


def recover(state_dir: Path, fsync: bool = True) -> JournaledApp:
    """moto's app behind the journal, with the snapshot loaded and the journal after it replayed."""
    install_determinism()
    restored, snapshot_seq = restore(state_dir)
    log.info("restored %s", ", ".join(restored) if restored else "nothing (fresh start)")
    entries = list(read_entries(state_dir / JOURNAL_DIR, after=snapshot_seq))
    next_seq = (entries[-1]["seq"] if entries else snapshot_seq) + 1
    journaled = JournaledApp(
        DomainDispatcherApplication(create_backend_app), Journal(state_dir / JOURNAL_DIR, next_seq, fsync)
    )
    if entries:
        started = time.monotonic()
        journaled.replay(iter(entries))
        log.info("replayed %d journaled writes in %.2fs", len(entries), time.monotonic() - started)
        _snapshot_logged(state_dir, journaled)  # so the next start does not replay them again
    return journaled


def private_state_dir(state_dir: Path) -> None:
    """The state dir holds the whole database (snapshot, journal): 0700, as ssh keeps ~/.ssh."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)


def serve(
    port: int, state_dir: Path, snapshot_every: float, fsync: bool = True, journal: bool = True
) -> None:
    private_state_dir(state_dir)
    install_patches()
    app: WSGIApplication
    journaled: JournaledApp | None
    if journal:
        journaled = app = recover(state_dir, fsync)
    else:  # snapshots only, as before the journal: for the benchmark's baseline
        journaled, app = None, DomainDispatcherApplication(create_backend_app)
        log.info("restored %s (no journal)", ", ".join(restore(state_dir)[0]) or "nothing")
    if os.environ.get(ENV_FLAG) == "1":  # the fault suite only
        app = FaultInjector(app, state_dir)
        log.warning("fault injection on: %s", faults_path(state_dir))
    server = bind_server(port, app)  # in this thread: a taken port fails here, loudly
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    log.info("moto listening on 127.0.0.1:%d", port)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cut = -1  # the journal's next sequence number when the last periodic snapshot began
    while not stop.wait(snapshot_every):
        # Nothing journaled since the last one: the same writes again (pickling every backend in
        # the apply lock, ~0.1 s per 10 MB of state), skipped. Never unsafe: the journal keeps all
        # since its last cut; only unjournaled reads' state (shard iterators) waits for a write.
        if journaled is not None and journaled.journal.next_seq == cut:
            continue
        cut = journaled.journal.next_seq if journaled else -1
        _snapshot_logged(state_dir, journaled)
    server.closing = True  # type: ignore[attr-defined]  # keep-alive connections close after their request
    server.shutdown()
    log.info("%s", fastpath.summary())
    _snapshot_logged(state_dir, journaled)
    if journaled:
        journaled.journal.close()
    log.info("stopped")


def _snapshot_logged(state_dir: Path, journaled: JournaledApp | None) -> None:
    started = time.monotonic()
    try:
        size = snapshot(state_dir, journaled)
    except Exception:
        log.exception("snapshot failed; the previous one is kept")
        return
    log.info("snapshot %d bytes in %.2fs", size, time.monotonic() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--snapshot-every", type=float, default=15.0, help="seconds between snapshots")
    parser.add_argument(
        "--no-fsync", action="store_true", help="journal without fsync (benchmarks only: not crash-safe)"
    )
    parser.add_argument(
        "--no-journal", action="store_true", help="snapshots only (benchmarks only: loses recent writes)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        state_dir = args.state_dir.resolve()
        serve(args.port, state_dir, args.snapshot_every, fsync=not args.no_fsync, journal=not args.no_journal)
    except OSError as exc:  # e.g. the port is taken: say so and exit, never hang
        log.error("cannot serve on 127.0.0.1:%d: %s", args.port, exc)
        raise SystemExit(1) from exc
    except JournalCorrupt as exc:  # never start over a journal that would lose acknowledged writes
        log.error("%s", exc)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
