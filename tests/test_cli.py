"""The `sales-ops` CLI as a user runs it: help, clear errors, non-zero exits.

The entry point itself (`python -m sales_ops.cli`) is run as a process; the refusals and help of
each command run in this process through click's runner (same app, same exit codes and stderr),
which saves a second of interpreter start-up and imports per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.harness import free_port, run_cli, stack_env

CLI = [sys.executable, "-m", "sales_ops.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=120
    )


def test_the_entry_point_runs_as_a_process():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize("command", [[], ["local"], ["local", "up"], ["load"]])
def test_every_command_has_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_negative_rate_is_refused():
    result = run_cli("load", "--orders", "10", "--rate", "-5")
    assert result.returncode == 2
    assert "--rate must be ≥ 0" in result.stderr


def test_negative_orders_is_refused():
    result = run_cli("load", "--orders", "-1")
    assert result.returncode == 2
    assert "greater than or equal to 0" in result.stderr


def test_unknown_target_is_refused():
    result = run_cli("--target", "mars", "local", "status")
    assert result.returncode == 1
    assert "unknown target 'mars'" in result.stderr
    assert "Traceback" not in result.stderr


def test_emulator_not_running_says_how_to_start_it(tmp_path):
    env = {
        **os.environ,
        "SALES_OPS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "SALES_OPS_STATE_DIR": str(tmp_path),
    }
    result = run_cli("load", "--orders", "1", env=env)
    assert result.returncode == 1
    assert "sales-ops local up" in result.stderr
    assert "Traceback" not in result.stderr

    status = run_cli("local", "status", env=env)
    assert status.returncode == 1
    assert "stopped" in status.stdout


def test_load_wait_and_status_json(local_stack):
    env = stack_env(local_stack)
    result = run("load", "--orders", "25", "--rate", "0", "--seed", "3", "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orders"] == 25 and summary["changes"] >= 25
    assert summary["delivered_after_s"] >= 0

    status = json.loads(run("local", "status", "--json", env=env).stdout)
    assert all(status["processes"].values())
    assert [stage["stage"] for stage in status["stages"]] == ["pipe", "firehose"]
    assert all(stage["pending"] == 0 for stage in status["stages"])
    # The workers write their counters once a second, so they may trail the checkpoints briefly.
    deadline = time.monotonic() + 10
    while status["stages"][1]["counters"].get("ok", 0) < summary["changes"] and time.monotonic() < deadline:
        time.sleep(0.5)
        status = json.loads(run("local", "status", "--json", env=env).stdout)
    assert status["stages"][1]["counters"]["ok"] >= summary["changes"]


@pytest.mark.slow  # runs `sales-ops local up`
def test_port_taken_by_another_process_is_reported(tmp_path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {
            **os.environ,
            "SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}",
            "SALES_OPS_STATE_DIR": str(tmp_path),
        }
        result = run("local", "up", env=env)
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "taken" in result.stderr


@pytest.mark.parametrize(
    "command", [["deploy"], ["destroy", "--yes"], ["--target", "aws", "local", "status"]]
)
def test_aws_commands_without_credentials_say_so(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SALES_OPS_STATE_DIR": str(tmp_path),
    }
    result = run_cli(*command, env=env)
    assert result.returncode == 1
    assert "No AWS credentials found" in result.stderr
    assert "Traceback" not in result.stderr


def test_deploy_rejects_malformed_parameter():
    result = run_cli("deploy", "--parameter", "novalue")
    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


def test_rate_limiter_never_exceeds_its_rate():
    from sales_ops.load.shop import RateLimiter

    limiter = RateLimiter(rate=200)  # 200 changes/s: 100 batches of 5 need at least 2.5 s
    started = time.monotonic()
    for _ in range(100):
        limiter.acquire(5)
    assert time.monotonic() - started >= (100 * 5 - 5) / 200
