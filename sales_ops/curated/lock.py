"""The writers' lease (compaction, each rollup): one S3 object taken with a conditional PUT, short
and renewed.

The lease is short (LEASE_S) and its holder renews it every third of that, so a holder that died
blocks the next compaction for at most LEASE_S. On the local target the holder also records its
host, pid and process start time: a contender on the same host sees at once that the holder's
process is gone (or that the pid now belongs to another process) and takes the lock over without
waiting. `break_lock` is the operator's last resort (`sales-ops compact --break-lock`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sales_ops.settings import CURATED_PREFIX, Settings, error_code

LOCK_KEY = f"{CURATED_PREFIX}_state/compaction.lock"
LEASE_S = 30.0  # a crashed holder delays the next compaction by at most this (heartbeat: LEASE_S / 3)


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), if known.

    With the pid it identifies a process: a pid reused by another process has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_gone(body: dict[str, Any]) -> bool:
    """True when the holder ran on this host and its process no longer exists.

    Only a local holder is judged (another host's processes are not visible from here), and only
    when it recorded its start time; otherwise the lease decides.
    """
    if body.get("host") != socket.gethostname() or not body.get("pid") or not body.get("started"):
        return False
    return process_start(int(body["pid"])) != body["started"]


def describe(body: dict[str, Any]) -> str:
    """The holder in words, for messages and for --break-lock."""
    until = datetime.fromtimestamp(body.get("expires_at", 0), UTC).isoformat(timespec="seconds")
    acquired = datetime.fromtimestamp(body.get("acquired_at", 0), UTC).isoformat(timespec="seconds")
    return f"{body.get('owner', 'unknown holder')} (since {acquired}, lease until {until})"


class CompactionError(RuntimeError):
    """Compaction cannot run; the message says why and what to do."""


class CompactionLocked(CompactionError):
    """Another writer (compaction, or a build of the same rollup) holds the lock, or this one lost it."""


class S3Lock:
    """A lease in one S3 object, taken with a conditional PUT (If-None-Match: *).

    An expired lease (its holder crashed) is taken over with If-Match on the ETag the contender read,
    so of two contenders only one wins. The holder renews the lease in the background; if a renewal
    finds the object changed, `lost` turns True and the compaction stops before its next catalog
    write.
    """

    def __init__(self, settings: Settings, key: str = LOCK_KEY, lease_s: float = LEASE_S) -> None:
        self.s3 = settings.client("s3")
        self.bucket = settings.bucket
        self.key = key
        self.lease_s = lease_s
        self.local = settings.target == "local"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None
        self.lost = False
        self.renewed_at = 0.0
        self._stop = threading.Event()

    def _body(self) -> bytes:
        now = time.time()
        body: dict[str, Any] = {"owner": self.owner, "acquired_at": now, "expires_at": now + self.lease_s}
        if self.local:
            pid = os.getpid()
            body |= {"host": socket.gethostname(), "pid": pid, "started": process_start(pid)}
        return json.dumps(body).encode()

    def _put(self, **condition: str) -> None:
        put = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), **condition)
        self.etag = put["ETag"]
        self.renewed_at = time.monotonic()

    def acquire(self) -> None:
        for _ in range(3):
            try:
                self._put(IfNoneMatch="*")
                return
            except ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            holder = self._read()
            if holder is None:
                continue  # released meanwhile: try again
            body, etag = holder
            if body.get("expires_at", 0) > time.time() and not holder_gone(body):
                raise CompactionLocked(
                    f"another writer holds {self.key.rsplit('/', 1)[-1]}: {describe(body)}; if it crashed, "
                    f"its lease expires then, or run `sales-ops compact --break-lock` "
                    f"(lock: s3://{self.bucket}/{self.key})"
                )
            try:  # the holder's lease ran out or its process is gone: take it over, atomically
                self._put(IfMatch=etag)
                return
            except ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                    raise
        raise CompactionLocked(f"could not take the writer lock s3://{self.bucket}/{self.key}")

    def _read(self) -> tuple[dict[str, Any], str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return json.loads(obj["Body"].read()), obj["ETag"]
        except ValueError:
            return {}, obj["ETag"]  # unreadable: treat as expired

    def renew(self) -> None:
        if self.etag is None:  # not held: nothing to renew
            self.lost = True
            return
        try:
            self._put(IfMatch=self.etag)
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "NoSuchKey", "ConditionalRequestConflict"):
                self.lost = True
            else:
                raise

    def check(self) -> None:
        """Raise unless the lease is certainly still ours (renewed less than a lease ago)."""
        if not self.lost and time.monotonic() - self.renewed_at >= self.lease_s:
            self.lost = True  # renewals failed for a whole lease: another compaction may hold it now
        if self.lost:
            raise CompactionLocked("this compaction lost its lock (lease expired and taken over); stopped")

    def release(self) -> None:
        if self.etag is None or self.lost:
            return
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as exc:
            if error_code(exc) not in ("PreconditionFailed", "NoSuchKey", "NotImplemented"):
                raise
            if error_code(exc) == "NotImplemented":  # no conditional delete: check the owner, then delete
                holder = self._read()
                if holder and holder[0].get("owner") == self.owner:
                    self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        self.etag = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.renew()
            except Exception:  # a failed renewal is retried; an expired lease shows up as `lost`
                continue
            if self.lost:
                return

    @contextmanager
    def held(self) -> Iterator[S3Lock]:
        self.acquire()
        beat = threading.Thread(target=self._heartbeat, name="compaction-lock", daemon=True)
        beat.start()
        try:
            yield self
        finally:
            self._stop.set()
            beat.join(timeout=5)
            self.release()


def read_holder(settings: Settings, key: str = LOCK_KEY) -> dict[str, Any] | None:
    """The lock's current content, or None when no compaction holds it."""
    found = S3Lock(settings, key)._read()
    return None if found is None else found[0]


def break_lock(settings: Settings, key: str = LOCK_KEY) -> dict[str, Any] | None:
    """Delete the lock whoever holds it; returns the holder it removed (None: there was none).

    For operators only: a live holder whose lock is broken finds it gone at its next renewal and
    stops before its next catalog write.
    """
    lock = S3Lock(settings, key)
    found = lock._read()
    if found is None:
        return None
    lock.s3.delete_object(Bucket=lock.bucket, Key=key)
    return found[0]
