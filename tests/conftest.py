"""Shared fixtures: a real embedded AWS (moto server + stand-in workers) per test session.

Each session gets its own free port on 127.0.0.1 and its own state dir, so test runs never touch
a developer's `.sales-ops/` or a stack on 4566, and parallel sessions do not collide.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from sales_ops.local import supervisor
from sales_ops.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_settings(state_dir: Path, port: int | None = None) -> Settings:
    port = port or free_port()
    return Settings.from_env(
        "local",
        env={"SALES_OPS_ENDPOINT": f"http://127.0.0.1:{port}", "SALES_OPS_STATE_DIR": str(state_dir)},
    )


@contextmanager
def running_server(
    name: str, cmd: list[str], env: dict[str, str], probe_url: str, log: Path, timeout: float = 90
) -> Iterator[subprocess.Popen]:
    """Run a server as a user starts it; yield once `probe_url` answers; stop it afterwards.

    Fails the test with the tail of the server's log if it exits or does not answer in time.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        _wait_answering(name, proc, probe_url, log, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_answering(name: str, proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"{name} not up within {timeout}s:\n{log.read_text()[-3000:]}")


def stack_env(settings: Settings) -> dict[str, str]:
    """Environment for a `sales-ops` subprocess that talks to this stack."""
    return {
        **os.environ,
        "SALES_OPS_TARGET": "local",
        "SALES_OPS_ENDPOINT": settings.endpoint_url or "",
        "SALES_OPS_STATE_DIR": str(settings.state_dir),
    }


def own_space(stack: Settings, state_dir: Path, label: str) -> Settings:
    """A bucket and Glue database of their own on a shared emulator (isolated from other tests)."""
    tag = f"{label}-{uuid.uuid4().hex[:8]}"
    settings = replace(stack, bucket=tag, database=tag.replace("-", "_"), state_dir=state_dir)
    settings.client("s3").create_bucket(Bucket=settings.bucket)
    settings.client("glue").create_database(DatabaseInput={"Name": settings.database})
    return settings


def drop_bucket(settings: Settings) -> None:
    s3 = settings.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=settings.bucket)


@pytest.fixture()
def space(local_stack: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """This test's own bucket, Glue database and state dir, on the session's emulator."""
    settings = own_space(local_stack, tmp_path, request.module.__name__.rsplit("_", 1)[-1][:3])
    yield settings
    drop_bucket(settings)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The whole local pipeline, started once per session and stopped at the end."""
    settings = stack_settings(tmp_path_factory.mktemp("stack"))
    supervisor.up(settings, log=lambda *_: None)
    try:
        yield settings
    finally:
        supervisor.down(settings, log=lambda *_: None)


@pytest.fixture()
def fresh_stack(tmp_path: Path) -> Iterator[Settings]:
    """A stack of its own, for tests that kill or restart processes."""
    settings = stack_settings(tmp_path / "stack")
    supervisor.up(settings, log=lambda *_: None)
    try:
        yield settings
    finally:
        supervisor.down(settings, log=lambda *_: None)
