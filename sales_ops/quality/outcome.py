"""What every data-quality check returns (never raises for what it finds): `passed`, a one-line
`summary` a person can act on, and `details` (JSON-serialisable) for machines and UIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLES = 5  # examples a summary names (details hold a few times more)


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
