"""What every `sales-ops` command shares: the consoles, the settings the global --target selects,
and failures said as one line with an exit code (2 for usage, 1 otherwise), never a traceback.

The commands live beside the area they drive (`sales_ops/<area>/cli.py`); `sales_ops/cli.py`
mounts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console
from rich.text import Text

from sales_ops.settings import Settings, SettingsError

# Data is printed as data: no rich markup or :emoji: codes in what we print (see query/cli.py's cell).
console = Console(emoji=False, highlight=False)
err = Console(stderr=True, emoji=False, highlight=False)

HOURS_MAX = 24 * 365 * 10  # ten years: more is a typo


class State:
    """The root command's global options, for the commands that run after it (set by sales_ops/cli.py)."""

    target: str | None = None


def settings() -> Settings:
    return Settings.from_env(State.target)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text("error: ", style="bold red") + Text(printable(message)))
    return typer.Exit(code)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters (ESC sequences, backspace, bells…) shown escaped, never sent to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def bounded(option: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """Exit 2 with a clear message unless low ≤ value ≤ high (low < value if low_open).

    NaN and ±inf never pass. Checked before any work starts: typer's own min/max let NaN through.
    """
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lower = f"> {low:g}" if low_open else f"≥ {low:g}"
        raise fail(f"{option} must be {lower} and ≤ {high:g} (got {value})", 2)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures become one clear line and a non-zero exit, not a traceback."""
    from sales_ops.local.progress import DeliveryTimeout
    from sales_ops.local.reachable import EmbeddedAwsDown
    from sales_ops.local.supervisor import EmulatorError

    try:
        yield
    except (SettingsError, EmulatorError, DeliveryTimeout, EmbeddedAwsDown, ValueError) as exc:
        raise fail(str(exc)) from None
    except EndpointConnectionError as exc:
        raise fail(
            f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is the embedded AWS running? "
            "Start it with `sales-ops local up`."
        ) from None
    except NoCredentialsError:
        raise fail("no AWS credentials found: configure a profile or AWS_* variables") from None
    except ClientError as exc:
        raise fail(f"AWS said: {exc}") from None


@contextmanager
def data_errors() -> Iterator[None]:
    """Query, crawl and compaction failures: the engine's own message, exit 1."""
    from sales_ops.catalog.crawlers import CrawlerError
    from sales_ops.curated.lock import CompactionError
    from sales_ops.query import QueryError

    try:
        yield
    except (QueryError, CrawlerError, CompactionError) as exc:  # MissingTableError names the table
        raise fail(str(exc)) from None


def running(cfg: Settings) -> Settings:
    """cfg, once the local target's emulator is known to answer (fails at once, not after retries)."""
    from sales_ops.local.reachable import require_reachable

    require_reachable(cfg)
    return cfg


def require_local(cfg: Settings, what: str) -> None:
    if not cfg.is_local:
        raise fail(f"{what} is for the local target only (current target: {cfg.target})", 2)


def human_size(n: float) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
