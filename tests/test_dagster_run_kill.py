"""A Dagster run whose worker is SIGKILLed does not stay STARTED (and hold the writer slot) for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dagster as dg
from sales_ops.local.devserver import dagster_home, fail_dead_runs
from tests.harness import ROOT, stack_settings

pytestmark = pytest.mark.slow

RUN = """
import sys, time
import dagster as dg

@dg.op
def slow():
    time.sleep(120)

@dg.job
def sleeper():
    slow()

with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    sleeper.execute_in_process(instance=instance)
"""


def _status(home: Path) -> list[dg.DagsterRunStatus]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [run.status for run in instance.get_runs()]


def test_a_killed_run_is_marked_failed(tmp_path: Path):
    home = dagster_home(stack_settings(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(home)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while _status(home) != [dg.DagsterRunStatus.STARTED]:
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        assert fail_dead_runs(home) == 0, "a live run is left alone"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(home) == [dg.DagsterRunStatus.STARTED]  # what the default launcher leaves
    assert fail_dead_runs(home) == 1
    assert _status(home) == [dg.DagsterRunStatus.FAILURE]


OPEN = "import sys, dagster as dg\nwith dg.DagsterInstance.from_config(sys.argv[1]) as i:\n    i.get_runs()\n"


def test_processes_starting_together_all_open_the_home(tmp_path: Path):
    """Daemon, run and reader opening a fresh home at once raced to stamp its schema (two alembic
    heads: every later open failed, seen in CI); `dagster_home` now creates the storage first."""
    home = dagster_home(stack_settings(tmp_path / "state"))
    opener = [sys.executable, "-c", OPEN, str(home)]
    procs = [subprocess.Popen(opener, stderr=subprocess.PIPE) for _ in range(4)]
    errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, errors
    assert _status(home) == []
