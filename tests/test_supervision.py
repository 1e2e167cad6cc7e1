"""Supervision: dead processes are started again, the restarts show in `local status`, and the
pipeline carries on with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sales_ops.local import devserver, supervisor
from sales_ops.local.progress import wait_delivered
from sales_ops.settings import Settings
from tests.harness import ROOT, stack_env
from tests.helpers import assert_replay_matches_dynamodb, order_item

pytestmark = pytest.mark.slow


def _sigkill(pid: int, port: int | None = None) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while supervisor._alive(pid) or (port and supervisor.port_open(port)):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_killed_processes_are_restarted_counted_and_lose_nothing(fresh_stack: Settings):
    ddb = fresh_stack.client("dynamodb")
    for i in range(30):
        ddb.put_item(TableName=fresh_stack.table, Item=order_item(f"sup-{i}"))

    # The emulator dies right after acknowledging writes; the devserver's supervision round sees it.
    _sigkill(supervisor.EMULATOR.pid(fresh_stack), fresh_stack.port)
    assert supervisor.dead(fresh_stack) == ["emulator"]
    devserver.supervise(fresh_stack)
    assert supervisor.dead(fresh_stack) == []

    # Then the workers; `sales-ops local up` is what a user runs.
    _sigkill(supervisor.WORKERS.pid(fresh_stack))
    up = subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", "local", "up"],
        cwd=ROOT,
        env=stack_env(fresh_stack),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stdout + up.stderr

    for i in range(30, 40):
        ddb.put_item(TableName=fresh_stack.table, Item=order_item(f"sup-{i}"))
    wait_delivered(fresh_stack, timeout=240)
    assert assert_replay_matches_dynamodb(fresh_stack) == 40

    status = subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", "local", "status", "--json"],
        cwd=ROOT,
        env=stack_env(fresh_stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    restarts = json.loads(status.stdout)["restarts"]
    assert restarts["emulator"]["restarts"] == 1 and restarts["workers"]["restarts"] == 1
    text = subprocess.run(
        [sys.executable, "-m", "sales_ops.cli", "local", "status"],
        cwd=ROOT,
        env=stack_env(fresh_stack),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "restarted 1x" in text
