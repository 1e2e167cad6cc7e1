"""A writer run whose worker is SIGKILLed while it holds the `sales_ops_writer` slot does not keep
it: the devserver marks the run failed, and the real daemon (run monitoring, the shipped
dagster/dagster.yaml) frees the slot, so the next writer runs (issue 24, bug 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import dagster as dg
from sales_ops.defs import policies
from sales_ops.defs.internals import pool_holders
from sales_ops.local.devserver import dagster_home, fail_dead_runs
from tests.harness import ROOT, stack_settings, stop_process

pytestmark = pytest.mark.slow

JOBS = """
import os, sys, time
import dagster as dg

@dg.op(pool={policies_pool!r})
def write():
    time.sleep(float(os.environ["WRITE_S"]))

@dg.job
def writer():
    write()

defs = dg.Definitions(jobs=[writer])

if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        assert writer.execute_in_process(instance=instance).success
"""


def _writer(home: Path, jobs: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "WRITE_S": str(seconds)}
    return subprocess.Popen([sys.executable, str(jobs)], cwd=ROOT, env=env)


def _holders(home: Path) -> set[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return pool_holders(instance, policies.WRITER_POOL)


def test_a_killed_writer_frees_its_slot_and_the_next_writer_runs(tmp_path: Path) -> None:
    home = dagster_home(stack_settings(tmp_path / "state"))
    shipped = yaml.safe_load((home / "dagster.yaml").read_text())["run_monitoring"]
    budget = shipped["free_slots_after_run_end_seconds"] + shipped["poll_interval_seconds"]
    jobs = tmp_path / "writer_jobs.py"
    jobs.write_text(JOBS.format(policies_pool=policies.WRITER_POOL))
    (tmp_path / "workspace.yaml").write_text(f"load_from:\n  - python_file: {jobs}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(tmp_path / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "daemon.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    first = _writer(home, jobs, 300)
    second = None
    try:
        deadline = time.monotonic() + 120
        while not _holders(home):
            assert first.poll() is None and time.monotonic() < deadline, "the writer never took the slot"
            time.sleep(0.5)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert fail_dead_runs(home) == 1  # what the devserver does every few seconds
        failed_at = time.monotonic()
        second = _writer(home, jobs, 0)
        # Startup of the daemon included: the slot is free within the configured seconds + a poll.
        second.wait(timeout=budget + 90)
        assert second.returncode == 0
        waited = time.monotonic() - failed_at
        print(f"next writer done {waited:.0f}s after the killed run was marked failed (budget {budget}s)")
        assert _holders(home) == set()
    finally:
        for proc in (first, second, daemon):
            if proc is not None:
                stop_process(proc, 10)
