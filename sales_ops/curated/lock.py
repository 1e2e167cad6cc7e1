"""The writers' lease (compaction, each rollup): one S3 object taken with a conditional PUT."""

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

    def __init__(self, settings: Settings, key: str = LOCK_KEY, lease_s: float = 900.0) -> None:
        self.s3 = settings.client("s3")
        self.bucket = settings.bucket
        self.key = key
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps(
            {"owner": self.owner, "acquired_at": now, "expires_at": now + self.lease_s}
        ).encode()

    def acquire(self) -> None:
        for _ in range(3):
            try:
                self.etag = self.s3.put_object(
                    Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*"
                )["ETag"]
                return
            except ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            holder = self._read()
            if holder is None:
                continue  # released meanwhile: try again
            body, etag = holder
            if body.get("expires_at", 0) > time.time():
                until = datetime.fromtimestamp(body["expires_at"], UTC).isoformat(timespec="seconds")
                raise CompactionLocked(
                    f"another writer holds {self.key.rsplit('/', 1)[-1]} ({body.get('owner')}, "
                    f"lease until {until}); "
                    f"if it crashed, its lease expires then (lock: s3://{self.bucket}/{self.key})"
                )
            try:  # the holder's lease ran out: take it over, atomically against other contenders
                self.etag = self.s3.put_object(
                    Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=etag
                )["ETag"]
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
        try:
            self.etag = self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=self.etag
            )["ETag"]
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "NoSuchKey", "ConditionalRequestConflict"):
                self.lost = True
            else:
                raise

    def check(self) -> None:
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
