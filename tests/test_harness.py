"""The two tiers: emulator tests are marked slow by the fixtures they use, and a test outside the
slow tier that starts the emulator, a stand-in or a server fails (tests/harness.py, conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sales_ops.local import supervisor
from sales_ops.settings import PROJECT_ROOT
from tests.harness import (
    MAX_START_TIMEOUT,
    START_TIMEOUT_ENV,
    EmulatorInFastTest,
    server_launched_by,
    stack_settings,
    start_timeout,
)

PY = sys.executable


@pytest.mark.parametrize(
    ("command", "started"),
    [
        ([PY, "-m", "sales_ops.local.emulator", "--port", "1"], "sales_ops.local.emulator"),
        ([PY, "-m", "sales_ops.local.workers"], "sales_ops.local.workers"),
        ([".venv/bin/sales-ops", "local", "up"], "sales-ops local up"),
        (
            [PY, "-m", "sales_ops.cli", "--target", "local", "local", "up"],
            "sales-ops --target local local up",
        ),
        ([PY, "-m", "sales_ops.cli", "dashboard", "--port", "1"], "sales-ops dashboard --port 1"),
        ([PY, "-m", "dagster_webserver", "-w", "workspace.yaml"], "dagster_webserver"),
        (["dagster", "dev", "-w", "workspace.yaml"], "dagster dev"),
        ("./scripts/run_local.sh", "run_local.sh"),
        (["sales-ops", "local", "up", "--help"], None),  # help starts nothing
        (["sales-ops", "local", "status"], None),
        (["sales-ops", "query", "--list"], None),
        ([PY, "-m", "sales_ops.cli", "load", "--orders", "1"], None),
        ([".venv-tools/bin/checkov", "-f", "infra/template.yaml"], None),
    ],
)
def test_what_counts_as_starting_a_server(command: list[str] | str, started: str | None) -> None:
    assert server_launched_by(command) == started


def test_a_fast_test_cannot_start_the_emulator(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    with pytest.raises(EmulatorInFastTest, match=r"sales_ops\.local\.emulator"):
        supervisor.up(settings, log=lambda *_: None)
    assert supervisor.EMULATOR.pid(settings) is None  # refused before anything ran
    with pytest.raises(EmulatorInFastTest, match="sales-ops dashboard"):
        subprocess.run([PY, "-m", "sales_ops.cli", "dashboard"], check=False)


def test_a_fast_test_cannot_start_a_moto_server() -> None:
    from moto.server import ThreadedMotoServer

    with pytest.raises(EmulatorInFastTest, match="moto server"):
        ThreadedMotoServer(ip_address="127.0.0.1", port=0).start()


def test_other_subprocesses_run_as_usual() -> None:
    result = subprocess.run([PY, "-c", "print('ok')"], capture_output=True, text=True, check=True)
    assert result.stdout == "ok\n"


def test_tests_using_emulator_fixtures_are_slow_directly_or_through_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("from tests.conftest import *  # the project's hooks and fixtures\n")
    pytester.makepyfile(
        test_tiers="""
        import pytest

        @pytest.fixture()
        def loaded(space):
            return space

        def test_plain(): pass
        def test_shared(local_stack): pass
        def test_fresh(fresh_stack): pass
        def test_own_space(space): pass
        def test_through_a_fixture(loaded): pass

        @pytest.mark.slow
        def test_marked(): pass
        """
    )
    fast = pytester.runpytest(
        "--import-mode=importlib", "-p", "no:cacheprovider", "--co", "-q", "-m", "not slow"
    )
    slow = pytester.runpytest("--import-mode=importlib", "-p", "no:cacheprovider", "--co", "-q", "-m", "slow")
    assert [line for line in fast.outlines if "::" in line] == ["test_tiers.py::test_plain"]
    assert sorted(line.split("::")[1] for line in slow.outlines if "::" in line) == [
        "test_fresh",
        "test_marked",
        "test_own_space",
        "test_shared",
        "test_through_a_fixture",
    ]


def test_start_timeouts_stretch_with_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    assert start_timeout(90, load=0.4, cores=2) == 90  # a quiet machine: the base
    assert start_timeout(90, load=6.0, cores=2) == 270  # 3 runnable processes a core: 3 times
    assert start_timeout(90, load=40.0, cores=2) == MAX_START_TIMEOUT  # capped
    monkeypatch.setenv(START_TIMEOUT_ENV, "12")
    assert start_timeout(90, load=40.0, cores=2) == 12


@pytest.mark.slow
def test_a_stack_that_cannot_start_fails_each_dependent_with_one_clear_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 136 errors of issue 22: the session's stack did not start in time under load and every
    test using it errored with the same traceback. Now each gets one line: how long it waited, what
    it saw, and the emulator's log (here the emulator dies: its journal dir is a file)."""
    pytester.makeconftest("from tests.conftest import *  # the project's hooks and fixtures\n")
    pytester.makepyfile(
        test_broken_stack="""
        import pytest
        from tests.harness import running_stack

        @pytest.fixture(scope="session")
        def stack(tmp_path_factory):
            state = tmp_path_factory.mktemp("broken")
            (state / "journal").write_text("not a directory")
            with running_stack(state) as settings:
                yield settings

        @pytest.mark.slow
        @pytest.mark.parametrize("n", range(3))
        def test_uses_stack(stack, n): pass
        """
    )
    # The inner pytest runs in its own directory: `tests` (not an installed package) from ours.
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-o", "markers=slow")
    result.assert_outcomes(errors=3)
    reasons = [line for line in result.outlines if line.startswith("the local stack did not start")]
    assert len(reasons) == 3 and len(set(reasons)) == 1, reasons  # one reason, said for each test
    assert " s of " in reasons[0] and "load average" in reasons[0]  # how long it waited, under what
    assert "the emulator exited during start-up" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()
