"""Small on-disk state for the stand-ins: checkpoints and status, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` so that a reader (or a crash) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON, atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


class Checkpoints:
    """Last processed sequence number per shard of one source, keyed by source ARN.

    Keyed by ARN so that a recreated table (new stream ARN) starts again from its own beginning
    instead of asking the new stream for a sequence number that only the old one had.
    """

    def __init__(self, path: Path, source_arn: str) -> None:
        self.path = path
        self.source_arn = source_arn
        self._all: dict[str, dict[str, str]] = read_json(path, {})
        self.shards: dict[str, str] = dict(self._all.get(source_arn, {}))

    def get(self, shard_id: str) -> str | None:
        return self.shards.get(shard_id)

    def commit(self, positions: dict[str, str]) -> None:
        """Record new positions (only ever forwards) and persist them before returning."""
        for shard, seq in positions.items():
            if shard not in self.shards or int(seq) > int(self.shards[shard]):
                self.shards[shard] = seq
        self._all[self.source_arn] = dict(self.shards)
        write_json_atomic(self.path, self._all)
