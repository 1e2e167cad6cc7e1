"""The stand-in workers' process: the Pipe and Firehose loops, separate from the emulator.

Separate so that a worker can crash (or be killed) and restart from its on-disk checkpoints while
the emulator's state lives on, as the managed services would. Writes `status/workers.json` every
second for `sales-ops local status`. Run as `python -m sales_ops.local.workers`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from dataclasses import asdict
from typing import Protocol

from sales_ops.local.checkpoint import write_json_atomic
from sales_ops.local.firehose import FirehoseStandIn
from sales_ops.local.pipe import PipeStandIn
from sales_ops.settings import Settings

log = logging.getLogger("sales_ops.workers")
# Seconds between polls when a source had nothing new: 0.1 after activity, growing by half with
# each empty poll up to IDLE_SLEEP_MAX. An idle stack then costs a few percent of a core instead of
# a sixth (20 polls a second, each a few HTTP calls served by the emulator), and a change after a
# quiet spell waits at most IDLE_SLEEP_MAX more at each hop.
IDLE_SLEEP = 0.1
IDLE_SLEEP_MAX = 0.5


class Stats(Protocol):
    errors: int


class StandIn(Protocol):
    stats: Stats

    def poll_once(self) -> int: ...


def run_loop(name: str, stand_in: StandIn, stop: threading.Event) -> None:
    """Poll until stopped; an error is logged and retried with backoff, never fatal."""
    failures = empty = 0
    while not stop.is_set():
        try:
            moved = stand_in.poll_once()
            failures = 0
        except Exception:
            failures += 1
            stand_in.stats.errors += 1
            log.exception("%s poll failed (%d in a row)", name, failures)
            # Connection refused while the emulator restarts: back off, but not so far that a
            # restart of a few seconds becomes a pause of many.
            stop.wait(min(0.2 * 2 ** (failures - 1), 2.0))
            continue
        empty = 0 if moved else empty + 1
        if not moved:
            stop.wait(idle_sleep(empty))


def idle_sleep(empty_polls: int) -> float:
    """The pause after `empty_polls` empty polls in a row (≥ 1)."""
    return min(IDLE_SLEEP * 1.5 ** (empty_polls - 1), IDLE_SLEEP_MAX)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env("local")
    pipe = PipeStandIn(settings)
    firehose = FirehoseStandIn(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [
        threading.Thread(target=run_loop, args=("pipe", pipe, stop), name="pipe", daemon=True),
        threading.Thread(target=run_loop, args=("firehose", firehose, stop), name="firehose", daemon=True),
    ]
    for thread in threads:
        thread.start()
    status_path = settings.state_path("status", "workers.json")
    while not stop.wait(1.0):
        write_json_atomic(
            status_path,
            {
                "pid": os.getpid(),
                "updated_at": time.time(),
                "pipe": asdict(pipe.stats),
                "firehose": asdict(firehose.stats),
            },
        )
    for thread in threads:
        thread.join(timeout=30)
    firehose.flush()  # deliver what is buffered so a clean stop leaves nothing in memory
    log.info("stopped cleanly")


if __name__ == "__main__":
    main()
