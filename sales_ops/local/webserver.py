"""`python -m sales_ops.local.webserver [dagster-webserver options]`: the Dagster UI behind the same
guard as the emulator and the dashboard (sales_ops/guard.py). `make run` starts it.

Dagster OSS has no login: any page the user's browser shows could POST to `/graphql` on loopback
(a `text/plain` POST needs no preflight) and launch runs, and a DNS-rebinding page could read the
answers. So: a Host that is not a loopback name is refused everywhere, and every request that can
act (any method but GET/HEAD, anything under /graphql, websockets) is refused when its Origin,
Referer or Sec-Fetch-Site says another site sent it. Plain page loads stay open, so a link to a
run (from an alert, say) still opens.
"""

from __future__ import annotations

import sys
from typing import Any

from sales_ops.defs.internals import guard_webserver_app
from sales_ops.guard import foreign_origin, loopback_host

SAFE_METHODS = ("GET", "HEAD")


def refusal(scope_type: str, method: str, path: str, headers: dict[str, str]) -> str | None:
    """Why the UI refuses this request (lower-case headers), or None."""
    host = headers.get("host", "")
    if not loopback_host(host):
        return "Host header is not 127.0.0.1/localhost"
    if scope_type == "http" and method in SAFE_METHODS and not path.startswith("/graphql"):
        return None
    return foreign_origin(headers, {f"http://{host.lower()}"})


class LocalOnlyUI:
    """ASGI middleware in front of the webserver's app: `refusal` → 403 (a websocket is closed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            reason = refusal(scope["type"], scope.get("method", ""), scope["path"], headers)
            if reason and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            if reason:
                body = f"refused: {reason}\n".encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    from dagster_webserver.cli import main as webserver_main

    guard_webserver_app(LocalOnlyUI)
    sys.argv = ["dagster-webserver", *(sys.argv[1:] if argv is None else argv)]
    webserver_main()


if __name__ == "__main__":
    main()
