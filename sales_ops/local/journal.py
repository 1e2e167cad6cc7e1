"""The emulator's write-ahead journal: an acknowledged write survives a SIGKILL.

moto keeps its state in memory and the emulator snapshots it every few seconds; everything between
two snapshots used to die with the process. Now every mutating request is, in one critical section,
appended to the journal and applied to moto; its response is returned only once the journal is
fsync'd (group commit: one fdatasync covers every request that waited for it). At start the last
snapshot is loaded and the journal entries after it are applied again, in order.

Replay must reproduce the same state, not just an equivalent one: the workers' checkpoints hold
DynamoDB stream and Kinesis sequence numbers, and the pipeline keys events by the stream record's
eventID. moto numbers records from the list length (deterministic given the order, which the
critical section fixes), but takes eventIDs, request ids and the like from its `mock_random` and
every timestamp from `moto.core.utils.utcnow`. Both are made per-request deterministic: while a
request is applied, `mock_random` draws from a generator seeded by the entry's sequence number and
time, and `utcnow` returns the entry's time. Replay sets the same two values, so eventIDs,
ApproximateCreationDateTime, S3 LastModified and ETags come back identical.

A snapshot records the sequence number of the last entry it contains; the journal is cut into a
new segment at that point and older segments are deleted only after the snapshot is on disk. A
crash between the two replays nothing twice: entries up to the snapshot's number are skipped.

Segments start with `SOJ2\n`; frames are `<length u32><crc32 of the pickle u32><crc32 of the 8
bytes before u32><pickle>`. Only the last frame of a segment may be torn (a crash during a write
that was never acknowledged; the next start opens a new segment): it is ignored. A bad frame
anywhere else is corruption, and replay stops with `JournalCorrupt`, keeping the journal,
instead of dropping every acknowledged write after it (issue 23). Segments without the magic
are the first format, `<length><crc32><pickle>`, still read (no migration needed: the recovery
snapshot retires them, and new segments are written in the new format).
"""

from __future__ import annotations

import datetime as _dt
import io
import itertools
import json
import logging
import os
import pickle
import random
import struct
import threading
import time
import types
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("sales_ops.journal")

JOURNAL_DIR = "journal"
_FRAME = struct.Struct("<III")  # length, crc32(payload), crc32(length + crc32(payload))
_FRAME_V1 = struct.Struct("<II")  # length, crc32(payload): segments without MAGIC
MAGIC = b"SOJ2\n"
# Read-only operations (by the name in X-Amz-Target or Action): never journaled.
_READ_PREFIXES = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Head", "Search")
# The request environ that moto reads; everything else (sockets, server objects) is not kept.
_KEPT_ENVIRON = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "RAW_URI",
    "CONTENT_TYPE",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
)


class JournalCorrupt(RuntimeError):
    """A journal entry that is not the torn tail fails its checksum: acknowledged writes are at stake."""


class JournalFull(OSError):
    """The journal could not be written (disk full?); the request was not applied."""


# --- determinism: moto's clock and random numbers, per request --------------------------------

_applying = threading.local()


class _RequestClock(_dt.datetime):
    """`datetime.datetime` as seen by moto.core.utils: frozen at the entry's time while applying."""

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
        at = getattr(_applying, "now", None)
        return _dt.datetime.now(tz) if at is None else _dt.datetime.fromtimestamp(at, tz)

    @classmethod
    def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
        return cls.now(_dt.UTC).replace(tzinfo=None)


def install_determinism() -> None:
    """Route moto's clock and `mock_random` through the per-request values (emulator process only)."""
    import moto.core.utils as core_utils
    from moto.moto_api._internal import mock_random

    clock = types.ModuleType("datetime")
    clock.__dict__.update(_dt.__dict__)
    clock.datetime = _RequestClock  # type: ignore[attr-defined]
    core_utils.datetime = clock  # utcnow(), unix_time() and friends read this module global

    base = type(mock_random)
    if getattr(base, "_sales_ops_per_request", False):
        return

    class PerRequestRandom(base):  # type: ignore[misc, valid-type]
        _sales_ops_per_request = True

        def random(self) -> float:
            rng = getattr(_applying, "rng", None)
            return rng.random() if rng is not None else super().random()

        def getrandbits(self, k: int) -> int:
            rng = getattr(_applying, "rng", None)
            return rng.getrandbits(k) if rng is not None else super().getrandbits(k)

    mock_random.__class__ = PerRequestRandom


@contextmanager
def applying(seq: int, at: float) -> Iterator[None]:
    """Within: moto's clock reads `at` and its random numbers come from a generator for `seq`."""
    _applying.now, _applying.rng = at, random.Random(f"{seq}:{at!r}")
    try:
        yield
    finally:
        _applying.now = _applying.rng = None


# --- which requests change state ----------------------------------------------------------------


def is_mutating(environ: dict[str, Any], body: bytes) -> bool:
    method = environ.get("REQUEST_METHOD", "GET")
    if method in ("GET", "HEAD", "OPTIONS") or environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: DynamoDB, Streams, Kinesis, Glue, Firehose
        return not target.rsplit(".", 1)[-1].startswith(_READ_PREFIXES)
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):  # query: IAM, STS
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        return not action.startswith(_READ_PREFIXES)
    return True  # REST (S3, Pipes): PUT, POST, DELETE


# --- the on-disk journal -------------------------------------------------------------------------


def _segment_name(first_seq: int) -> str:
    return f"wal-{first_seq:016d}.log"


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def read_entries(directory: Path, after: int) -> Iterator[dict[str, Any]]:
    """Every entry with a sequence number above `after`, in order.

    A torn tail (the last frame of a segment) is ignored; any other bad frame raises
    JournalCorrupt, naming the segment and the byte, and the journal is left as it is.
    """
    for path in segments(directory):
        for payload in _frames(path, path.read_bytes()):
            entry = pickle.loads(payload)
            if entry["seq"] > after:
                yield entry


def _frames(path: Path, data: bytes) -> Iterator[bytes]:
    v2 = data.startswith(MAGIC)
    frame = _FRAME if v2 else _FRAME_V1
    offset = len(MAGIC) if v2 else 0
    while offset < len(data):
        problem = None
        if offset + frame.size > len(data):
            problem, end = "a cut frame header", len(data)
        else:
            length, crc, *header_crc = frame.unpack_from(data, offset)
            end = offset + frame.size + length
            if v2 and zlib.crc32(data[offset : offset + 8]) != header_crc[0]:
                problem = "a frame header that fails its checksum"
                end = -1  # its length cannot be trusted: only a tail of zeros is torn
            elif end > len(data):
                problem = "a cut entry"
            elif zlib.crc32(data[offset + frame.size : end]) != crc:
                problem = "an entry that fails its checksum"
        if problem is None:
            yield data[offset + frame.size : end]
            offset = end
            continue
        # Torn: the segment's last frame (a crash cut it; the next start opened a new segment),
        # or zeros where the file system extended the file. Anything after it means corruption.
        torn = end >= len(data) or not data[offset:].strip(b"\0")
        if torn:
            log.warning(
                "%s: torn entry at byte %d (%s; never acknowledged), ignored", path.name, offset, problem
            )
            return
        raise JournalCorrupt(
            f"the emulator's journal is corrupt: {path} has {problem} at byte {offset} of {len(data)}, "
            "with acknowledged writes after it. Nothing was replayed and the journal is kept: copy the "
            "state dir aside and restore it from a backup, or move the journal away to start from "
            "the last snapshot (losing the writes since)"
        )


class Journal:
    """Append-only segments with group commit. `append` is called inside the apply lock."""

    def __init__(self, directory: Path, next_seq: int, fsync: bool = True) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)  # the journal holds every write: owner only, like its segments
        self.directory = directory
        self.fsync = fsync
        self.next_seq = next_seq
        self._cond = threading.Condition()
        self._written = self._synced = next_seq - 1
        self._syncing = False
        self._fd = -1
        self._offset = 0
        self._open_segment()

    def _open_segment(self) -> None:
        path = self.directory / _segment_name(self.next_seq)
        # A segment of this name can only hold a torn, never-acknowledged entry (anything intact in
        # it would have moved next_seq past it at replay): start it afresh.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.write(self._fd, MAGIC)
        self._offset = len(MAGIC)
        _fsync_dir(self.directory)

    def append(self, entry: dict[str, Any]) -> int:
        """Write one entry (not yet durable); returns its sequence number. Raises JournalFull."""
        seq = entry["seq"] = self.next_seq
        payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        head = struct.pack("<II", len(payload), zlib.crc32(payload))
        frame = head + struct.pack("<I", zlib.crc32(head)) + payload
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(28, "short write")
        except OSError as exc:
            os.ftruncate(self._fd, self._offset)  # no torn frame in front of later entries
            raise JournalFull(exc.errno, f"cannot write the emulator's journal: {exc.strerror}") from exc
        self._offset += len(frame)
        self.next_seq += 1
        with self._cond:
            self._written = seq
        return seq

    def wait_durable(self, seq: int) -> None:
        """Block until entry `seq` is on disk; one caller syncs for everyone waiting (group commit)."""
        with self._cond:
            while self._synced < seq:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing, target, fd = True, self._written, self._fd
                self._cond.release()
                synced = False
                try:
                    if self.fsync:
                        os.fdatasync(fd)
                    synced = True
                finally:
                    self._cond.acquire()
                    if synced:
                        self._synced = max(self._synced, target)
                    self._syncing = False
                    self._cond.notify_all()

    def rotate(self) -> int:
        """Start a new segment (inside the apply lock); returns the last sequence number before it."""
        last = self.next_seq - 1
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self.fsync:
                os.fdatasync(self._fd)
            self._synced = self._written
            os.close(self._fd)
        self._open_segment()
        return last

    def drop_through(self, seq: int) -> None:
        """Delete segments whose entries are all ≤ `seq` (they are in a snapshot on disk)."""
        paths = segments(self.directory)
        for path, following in itertools.pairwise(paths):
            if int(following.stem.split("-")[1]) - 1 <= seq:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._cond:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the WSGI layer ------------------------------------------------------------------------------


def _call(app: Callable, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI app to completion; returns status, headers and the whole body."""
    started: list[Any] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        started[:] = [status, headers]

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return started[0], started[1], body


def _replay_environ(entry: dict[str, Any]) -> dict[str, Any]:
    from werkzeug.test import create_environ

    environ = create_environ()
    environ.update(entry["environ"])
    environ["wsgi.input"] = io.BytesIO(entry["body"])
    environ["CONTENT_LENGTH"] = str(len(entry["body"]))
    return environ


class JournaledApp:
    """WSGI middleware: mutating requests are journaled and applied one at a time, acked when durable."""

    def __init__(self, app: Callable, journal: Journal) -> None:
        self.app = app
        self.journal = journal
        self.lock = threading.Lock()  # the order of the journal is the order of application

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        from werkzeug.wsgi import get_input_stream

        if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
            return self.app(environ, start_response)
        body = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input_terminated"] = False
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if not is_mutating(environ, body):
            return self.app(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET") and not _json_object_text(body):
            # moto answered a non-JSON PutItem 200, and it was journaled (issue 23): refused as
            # DynamoDB refuses it, before it is applied or journaled.
            return _refused(
                start_response,
                "SerializationException",
                "the body of a JSON-protocol request is not a JSON object",
            )
        kept = {k: v for k, v in environ.items() if k in _KEPT_ENVIRON or k.startswith("HTTP_")}
        with self.lock:
            at = time.time()
            try:
                seq = self.journal.append({"at": at, "environ": kept, "body": body})
            except JournalFull as exc:
                log.error("%s; the request was refused and nothing was applied", exc)
                return _unavailable(start_response, str(exc))
            with applying(seq, at):
                status, headers, out = _call(self.app, environ)
        try:
            self.journal.wait_durable(seq)
        except OSError as exc:  # applied in memory but not durable: this process must not go on
            log.critical("journal fsync failed (%s); exiting so that no unrecorded write survives", exc)
            os._exit(3)
        start_response(status, headers)
        return [out]

    def replay(self, entries: Iterator[dict[str, Any]]) -> int:
        """Apply journal entries again, in order, exactly as they were applied; returns how many."""
        count = 0
        with self.lock:
            for entry in entries:
                with applying(entry["seq"], entry["at"]):
                    try:
                        _call(self.app, _replay_environ(entry))
                    except Exception:  # it failed the same way live (moto is deterministic here)
                        log.exception("journal entry %d failed again at replay", entry["seq"])
                self.journal.next_seq = entry["seq"] + 1
                count += 1
        return count


def _json_object_text(body: bytes) -> bool:
    """Whether the body looks like one JSON object (a cheap check: moto parses it next)."""
    text = body.strip()
    return not text or (text[:1] == b"{" and text[-1:] == b"}")


def _refused(start_response: Callable, kind: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": kind, "message": message}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
    return [body]


def _unavailable(start_response: Callable, message: str) -> list[bytes]:
    body = f'{{"__type":"ServiceUnavailable","message":"{message}"}}'.encode()
    start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "1")])
    return [body]
