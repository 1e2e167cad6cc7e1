"""Fail at once when the embedded AWS is down, instead of after boto3's and httpfs's retries.

With the emulator stopped, `check` took 93 s and each dashboard refresh 143 s to say so. One TCP
connect to the endpoint's port (refused at once on loopback) answers the question first.
"""

from __future__ import annotations

from sales_ops.settings import Settings


class EmbeddedAwsDown(RuntimeError):
    """The local target's emulator does not answer; the message says how to start it."""


def require_reachable(settings: Settings) -> None:
    """EmbeddedAwsDown unless the emulator's port accepts a connection (local target only)."""
    from sales_ops.local.supervisor import port_open

    if settings.is_local and not port_open(settings.port):
        raise EmbeddedAwsDown(
            f"embedded AWS not running on {settings.endpoint_url}: start it with `sales-ops local up`"
        )
