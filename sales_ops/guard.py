"""What the local servers (the emulator, the dashboard) accept from a browser: one place for it.

Binding to 127.0.0.1 keeps other machines out, not the user's own browser: any page it shows can
send requests to loopback, and a DNS-rebinding page can even read the answers. So both servers
refuse a Host header that is not a loopback name, and a request whose Origin (or Referer, or
`Sec-Fetch-Site: cross-site`) says it comes from another site.
"""

from __future__ import annotations

from urllib.parse import urlparse

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def loopback_host(host: str) -> bool:
    """True for 127.0.0.1, localhost and [::1], with or without a port (anything else: DNS rebinding)."""
    host = host.strip().lower()
    name = host.split("]", 1)[0] + "]" if host.startswith("[") else host.split(":", 1)[0]
    return name in LOOPBACK_HOSTS


def normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def foreign_origin(headers: dict[str, str], allowed: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Why a request with these (lower-case) headers comes from another site, or None.

    No Origin, Referer or Sec-Fetch-Site (what SDKs, curl and the CLI send) is not foreign.
    """
    origin = headers.get("origin")
    if origin is None and headers.get("referer"):
        parsed = urlparse(headers["referer"])
        origin = f"{parsed.scheme}://{parsed.netloc}"
    if origin is not None and normal_origin(origin) not in allowed:
        return f"cross-origin request from {origin!r} refused"
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "cross-site browser request refused"
    return None
