"""The emulator process: a moto server on 127.0.0.1 whose state survives restarts.

moto keeps everything in memory. Its backends pickle, so this process restores a snapshot before the
server starts, snapshots periodically and on SIGTERM, always written atomically (tmp + rename).
Run as `python -m sales_ops.local.emulator --port 4566 --state-dir .sales-ops`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import signal
import threading
import time
from pathlib import Path

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from sales_ops.local import export

log = logging.getLogger("sales_ops.emulator")

# Services whose state the pipeline owns; all were seen to pickle and restore (DESIGN §5).
PERSISTED_SERVICES = ("dynamodb", "dynamodbstreams", "s3", "kinesis", "glue", "firehose", "pipes", "iam")
SNAPSHOT_FILE = "emulator.snapshot"


def snapshot_path(state_dir: Path) -> Path:
    return state_dir / SNAPSHOT_FILE


def _backend(service: str):
    import moto.backends

    return moto.backends.get_backend(service)


def restore(state_dir: Path) -> list[str]:
    """Load the snapshot (if any) into moto's backends; returns the services restored."""
    path = snapshot_path(state_dir)
    if not path.exists():
        return []
    with path.open("rb") as fh:
        saved: dict[str, object] = pickle.load(fh)
    for service, backend in saved.items():
        live = _backend(service)
        live.clear()
        live.update(backend)
    return sorted(saved)


def snapshot(state_dir: Path, attempts: int = 5) -> int:
    """Write every persisted backend to disk atomically; returns the snapshot's size in bytes.

    Request threads may mutate a backend while it is pickled ("dictionary changed size"), so a
    failed attempt is retried; the previous snapshot stays in place until a new one is complete.
    """
    path = snapshot_path(state_dir)
    tmp = path.with_suffix(".tmp")
    for attempt in range(1, attempts + 1):
        try:
            payload = pickle.dumps({svc: _backend(svc) for svc in PERSISTED_SERVICES})
            break
        except RuntimeError as exc:
            log.warning("snapshot attempt %d failed: %s", attempt, exc)
            time.sleep(0.05 * attempt)
    else:
        raise RuntimeError(f"could not snapshot the emulator after {attempts} attempts")
    with tmp.open("wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(payload)


_STREAM_LOCK = threading.Lock()
_KINESIS_LOCK = threading.Lock()


def install_patches() -> None:
    """Our changes to moto's behaviour, applied only inside the emulator process."""
    _serialize_stream_appends()
    _fast_stream_get_records()
    _safe_kinesis_shards()
    _fast_kinesis_put_records()
    export.install()  # ExportTableToPointInTime writing AWS's real layout (sales_ops/local/export.py)


def _serialize_stream_appends() -> None:
    """Make DynamoDB stream appends atomic, so sequence numbers are unique and in list order.

    moto computes `seq = len(items) + start`, builds the record, then appends, with no lock: two
    concurrent writes got the same sequence number (seen in tests/test_pipeline.py), and since
    its iterators use the number as a list index, a resume from a checkpoint could skip or repeat
    records. DynamoDB guarantees unique, increasing numbers per shard; this restores that.
    """
    from moto.dynamodb.models.table import StreamShard

    unlocked_add = StreamShard.add

    def add(self: StreamShard, old: object, new: object) -> None:
        with _STREAM_LOCK:
            unlocked_add(self, old, new)

    StreamShard.add = add


def _fast_stream_get_records() -> None:
    """Serve DynamoDB Streams GetRecords with a direct JSON dump instead of moto's serializer.

    moto 5.2 serializes responses by walking the botocore model, which for GetRecords (hundreds
    of nested AttributeValue maps) costs ~1.3 ms a record and capped the whole local path near
    700 changes/s. The records moto stores are already in wire shape; only the creation time is
    a naive UTC datetime, sent as epoch seconds with milliseconds exactly as moto's serializer
    does. Same bytes on the wire, measured: see bench/bench_pipeline.py.
    """
    from datetime import UTC, datetime

    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    def encode(value: object) -> float:
        if isinstance(value, datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
            return round(stamp.timestamp(), 3)
        raise TypeError(f"cannot encode {type(value).__name__}")

    def get_records(self: DynamoDBStreamsHandler) -> str:
        limit = self._get_param("Limit") or 1000
        result = self.backend.get_records(self._get_param("ShardIterator"), limit)
        return json.dumps(result, default=encode)

    DynamoDBStreamsHandler.get_records = get_records


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

    Shard.get_max_sequence_number = last
    Shard.get_min_sequence_number = first
    Shard.put_record = put_record
    Shard.get_records = get_records


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

    KinesisResponse.put_records = put_records


def bind_server(port: int) -> BaseWSGIServer:
    """moto's WSGI app on 127.0.0.1 only.

    Bound here rather than through moto's ThreadedMotoServer, whose start() waits without a
    timeout for a thread that dies when the port is taken, leaving the process hanging.
    """
    app = DomainDispatcherApplication(create_backend_app)
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def serve(port: int, state_dir: Path, snapshot_every: float) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    install_patches()
    restored = restore(state_dir)
    log.info("restored %s", ", ".join(restored) if restored else "nothing (fresh start)")
    server = bind_server(port)  # in this thread: a taken port fails here, loudly
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    log.info("moto listening on 127.0.0.1:%d", port)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(snapshot_every):
        _snapshot_logged(state_dir)
    server.shutdown()
    _snapshot_logged(state_dir)
    log.info("stopped")


def _snapshot_logged(state_dir: Path) -> None:
    started = time.monotonic()
    try:
        size = snapshot(state_dir)
    except Exception:
        log.exception("snapshot failed; the previous one is kept")
        return
    log.info("snapshot %d bytes in %.2fs", size, time.monotonic() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state-dir", type=Path, default=Path(".sales-ops"))
    parser.add_argument("--snapshot-every", type=float, default=15.0, help="seconds between snapshots")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        serve(args.port, args.state_dir.resolve(), args.snapshot_every)
    except OSError as exc:  # e.g. the port is taken: say so and exit, never hang
        log.error("cannot serve on 127.0.0.1:%d: %s", args.port, exc)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
