"""Shared fixtures: a real embedded AWS (moto server + stand-in workers) per test session.

Each session (and each pytest-xdist worker: `make test` runs two) gets its own free port on
127.0.0.1 and its own state dir, so test runs never touch a developer's `.sales-ops/` or a stack on
4566, and parallel sessions do not collide. The helpers behind these fixtures live in
tests/harness.py. A stack that cannot start fails its dependent tests with one line saying how long
it waited and what it saw (harness.start_stack), not with a traceback each.

Two tiers: every test that uses an emulator fixture is marked `slow` here; `pytest -m "not slow"`
(`make check`) runs the rest, and fails any of them that tries to start an emulator or a server.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from sales_ops.settings import Settings
from tests.harness import EMULATOR_FIXTURES, drop_bucket, no_emulator, own_space, running_stack

pytest_plugins = ["pytester"]

# A developer's DAGSTER_HOME (e.g. `make run`'s .sales-ops/dagster) is never shared with the tests,
# nor between workers: tests that need an instance make their own (instance_for_test, a tmp home).
os.environ.pop("DAGSTER_HOME", None)

# A suite started in the background (`nohup make test &`, `cmd &` in a script) inherits SIGINT
# ignored. An in-process Dagster run then sets SIGTERM to the same when it restores SIGINT
# (dagster._utils.interrupts.capture_interrupts), and every process the tests start afterwards
# inherits both ignored: a stand-in stopped during its start-up, each Dagster step's compute-log
# `tail`, a `sales-ops load` sent Ctrl-C sat out a 30 s timeout (and the Ctrl-C test failed).
# Python's own default instead, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that needs an emulator fixture, directly or through another fixture."""
    for item in items:
        if EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _guarded(item: pytest.Item) -> AbstractContextManager[None]:
    """Outside the slow tier, starting the emulator or a server fails the test."""
    return nullcontext() if item.get_closest_marker("slow") else no_emulator()


# Hooks, not an autouse fixture: the guard must also cover module- and session-scoped fixtures,
# which are set up before any function-scoped one.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


@pytest.fixture()
def space(local_stack: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """This test's own bucket, Glue database and state dir, on the session's emulator."""
    settings = own_space(local_stack, tmp_path, request.module.__name__.rsplit("_", 1)[-1][:3])
    yield settings
    drop_bucket(settings)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The whole local pipeline, started once per session and stopped at the end."""
    with running_stack(tmp_path_factory.mktemp("stack")) as settings:
        yield settings


@pytest.fixture()
def fresh_stack(tmp_path: Path) -> Iterator[Settings]:
    """A stack of its own, for tests that kill or restart processes."""
    with running_stack(tmp_path / "stack") as settings:
        yield settings
