"""The Lambda deployment package: reproducible zip of the handler (plus orjson's wheel)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sales_ops.settings import HANDLER_PATH, StackError

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]

DEFAULT_BUILD_DIR = Path(".sales-ops") / "build"

# The Lambda's platform: keep in step with Runtime/Architectures of TransformFunction in the template.
LAMBDA_PYTHON = "3.11"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
ORJSON_VERSION = "3.13.0"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates go through S3 (TemplateURL)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_lambda(
    build_dir: Path = DEFAULT_BUILD_DIR,
    handler: Path = HANDLER_PATH,
    with_orjson: bool = True,
    wheel_dir: Path | None = None,
) -> tuple[Path, str]:
    """Zip the Lambda (handler.py, plus orjson built for the Lambda's platform) reproducibly.

    Entries are sorted with fixed timestamps and modes, so the same sources give the same bytes;
    returns (zip path, sha256 hex). orjson's wheel is fetched once into `wheel_dir` (default
    `build_dir/wheels`) with pip; the handler works without it (`with_orjson=False`).
    """
    handler = Path(handler)
    if not handler.is_file():
        raise StackError(f"Lambda handler not found at {handler}: run from the project checkout.")
    files = {"handler.py": handler.read_bytes()}
    if with_orjson:
        files.update(_wheel_files(_orjson_wheel(Path(wheel_dir or Path(build_dir) / "wheels"))))
    data = _zip_bytes(files)
    digest = hashlib.sha256(data).hexdigest()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"firehose_transform-{digest[:16]}.zip"
    path.write_bytes(data)
    return path, digest


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.create_system = 3  # unix, so the modes above are honoured
            archive.writestr(info, files[name])
    return buffer.getvalue()


def _orjson_wheel(wheel_dir: Path) -> Path:
    pattern = f"orjson-{ORJSON_VERSION}-cp{LAMBDA_PYTHON.replace('.', '')}-*x86_64*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", f"orjson=={ORJSON_VERSION}", "--no-deps",
        "--only-binary=:all:", "--platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON,
        "--implementation", "cp", "--dest", str(wheel_dir), "--quiet",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheel_dir.glob(pattern))
    if result.returncode != 0 or not found:
        raise StackError(
            f"Could not download orjson {ORJSON_VERSION} for the Lambda ({result.stderr.strip()[-300:]}); "
            "deploy without it (--no-orjson): the handler runs on the standard library alone."
        )
    return found[0]


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
