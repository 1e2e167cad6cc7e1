"""The compaction lock: a SIGKILLed `sales-ops compact` does not block the next one, and --break-lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from sales_ops.catalog.crawlers import LocalCrawler
from sales_ops.curated.lock import LOCK_KEY, CompactionLocked, S3Lock, holder_gone, process_start
from sales_ops.load.synthetic import ChangeStream, plan_changes, raw_lines, write_lines
from sales_ops.settings import Settings
from tests.harness import ROOT, stack_env

pytestmark = pytest.mark.slow


def _compact(settings: Settings, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sales_ops.cli", "compact", *args],
        cwd=ROOT,
        env=stack_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _lock_body(settings: Settings) -> bytes | None:
    try:
        return settings.client("s3").get_object(Bucket=settings.bucket, Key=LOCK_KEY)["Body"].read()
    except ClientError:
        return None


def test_a_sigkilled_compaction_does_not_block_the_next_one(fresh_stack: Settings):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    # Enough for the compaction to hold its lock a few seconds (it is killed as soon as it does).
    changes = plan_changes(600, end - timedelta(days=4), end, seed=11)
    write_lines(fresh_stack, raw_lines(changes, ChangeStream(seed=11)))
    LocalCrawler(fresh_stack).run()

    victim = _compact(fresh_stack, "--full")
    deadline = time.monotonic() + 120
    while _lock_body(fresh_stack) is None:
        assert victim.poll() is None, f"the compaction ended before it was killed: {victim.stdout.read()}"
        assert time.monotonic() < deadline, "the compaction never took the lock"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert _lock_body(fresh_stack) is not None, "the killed holder left its lock behind"

    started = time.monotonic()
    done = _run_cli(fresh_stack, "compact")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "another compaction is running" not in done.stdout + done.stderr
    assert time.monotonic() - started < 60
    assert _lock_body(fresh_stack) is None


def test_holder_gone_only_for_a_dead_local_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = {"host": os.uname().nodename, "pid": child.pid, "started": process_start(child.pid)}
        assert not holder_gone(alive)
        assert holder_gone(alive | {"started": "1"})  # the pid now belongs to another process
    finally:
        child.kill()
        child.wait()
    assert holder_gone(alive)
    assert not holder_gone(alive | {"host": "another-host"})  # judged by its lease only


def test_break_lock_shows_the_holder_and_asks(fresh_stack: Settings):
    other = S3Lock(fresh_stack, LOCK_KEY, lease_s=300)
    other.acquire()  # alive (this process), far from expiry: a normal compaction must wait
    with pytest.raises(CompactionLocked, match="--break-lock"):
        S3Lock(fresh_stack, LOCK_KEY).acquire()

    refused = _run_cli(fresh_stack, "compact", "--break-lock", input="n\n")
    assert refused.returncode == 1
    assert other.owner in refused.stdout
    assert _lock_body(fresh_stack) is not None

    broken = _run_cli(fresh_stack, "compact", "--break-lock", "--yes")
    assert other.owner in broken.stdout and "compaction lock removed" in broken.stdout
    assert _lock_body(fresh_stack) is None
    other.renew()
    with pytest.raises(CompactionLocked, match="lost its lock"):
        other.check()


def _run_cli(settings: Settings, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", *args],
        cwd=ROOT,
        env=stack_env(settings),
        input=input,
        capture_output=True,
        text=True,
        timeout=300,
    )
