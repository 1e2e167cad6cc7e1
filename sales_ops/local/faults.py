"""Throttling on demand, for the fault suite (`make faults`): the emulator answers as AWS does.

Active only in an emulator started with SALES_OPS_FAULTS=1 in its environment. It then reads
`<state dir>/run/faults.json` (at most every 0.2 s), e.g. {"s3_slowdown_until": <epoch s>,
"kinesis_throttle_until": <epoch s>}, and until those times refuses:
- S3 PutObject with 503 SlowDown, as S3 does under request-rate pressure
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html);
- Kinesis PutRecord/PutRecords with 400 ProvisionedThroughputExceededException
  (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html).
A refused request never reaches moto or the journal: nothing changes, as with the real services.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV_FLAG = "SALES_OPS_FAULTS"
FAULTS_FILE = ("run", "faults.json")
_KINESIS_PUTS = ("Kinesis_20131202.PutRecord", "Kinesis_20131202.PutRecords")


def faults_path(state_dir: Path) -> Path:
    return state_dir.joinpath(*FAULTS_FILE)


class FaultInjector:
    """WSGI middleware in front of the journal (see module doc)."""

    def __init__(self, app: Callable, state_dir: Path) -> None:
        self.app, self.path = app, faults_path(state_dir)
        self._faults: dict[str, float] = {}
        self._read_at = 0.0

    def _active(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._read_at > 0.2:
            self._read_at = now
            try:
                self._faults = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._faults = {}
        return self._faults

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        faults, now = self._active(), time.time()
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if faults.get("kinesis_throttle_until", 0) > now and target in _KINESIS_PUTS:
            body = b'{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}'
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
            return [body]
        if faults.get("s3_slowdown_until", 0) > now and _is_put_object(environ, target):
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [body]
        return self.app(environ, start_response)


def _is_put_object(environ: dict[str, Any], target: str) -> bool:
    path = environ.get("PATH_INFO", "").strip("/")
    return environ.get("REQUEST_METHOD") == "PUT" and not target and "/" in path
