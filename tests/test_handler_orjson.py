"""The handler imports and gives the same bytes with any orjson: a real old one, one without
`Fragment`, an empty stand-in, or none at all (issue 11)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDLER_PATH = ROOT / "lambdas" / "firehose_transform" / "handler.py"
EVENT = ROOT / "tests" / "events" / "firehose_transform_event.json"
OLD_ORJSON = "3.8.14"  # the last 3.8 release: before orjson.Fragment (3.9), with wheels for 3.11


def _load(orjson_module: object) -> types.ModuleType:
    """handler.py imported from its path while `import orjson` yields `orjson_module`."""
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = orjson_module  # type: ignore[assignment]  # None: the import fails
    try:
        spec = importlib.util.spec_from_file_location("handler_orjson_variant", HANDLER_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.modules["orjson"] = saved  # type: ignore[assignment]


def _reference() -> dict:
    return _load(None).handler(json.loads(EVENT.read_text()), None)


def test_orjson_without_fragment_falls_back_to_the_stdlib_writer() -> None:
    partial = types.ModuleType("orjson")
    partial.__dict__.update({k: v for k, v in vars(orjson).items() if k != "Fragment"})
    handler = _load(partial)
    assert handler._raw_number is handler._RawNumber and handler._fast_loads is orjson.loads
    out = handler.handler(json.loads(EVENT.read_text()), None)
    assert out == _reference()
    assert {r["result"] for r in out["records"]} == {"Ok"}


def test_an_empty_orjson_module_is_as_good_as_none() -> None:
    handler = _load(types.ModuleType("orjson"))
    assert handler.handler(json.loads(EVENT.read_text()), None) == _reference()


@pytest.fixture(scope="session")
def old_orjson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real old orjson wheel installed into a directory of its own (from the package index)."""
    target = tmp_path_factory.mktemp("old-orjson")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    result = subprocess.run(
        [*pip, "--only-binary=:all:", "--target", str(target), f"orjson=={OLD_ORJSON}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.skip(f"orjson=={OLD_ORJSON} could not be installed (offline?): {result.stderr[-300:]}")
    return target


def test_a_real_old_orjson_imports_and_gives_the_same_bytes(old_orjson: Path) -> None:
    script = (
        "import importlib.util, json, sys\n"
        "import orjson\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(HANDLER_PATH)!r})\n"
        "h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)\n"
        f"out = h.handler(json.load(open({str(EVENT)!r})), None)\n"
        "print(json.dumps({'version': orjson.__version__, 'fragment': hasattr(orjson, 'Fragment'),\n"
        "                  'fast_loads': h._fast_loads is orjson.loads, 'out': out}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(old_orjson), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == OLD_ORJSON and not result["fragment"]
    assert result["fast_loads"]
    assert result["out"] == _reference()
