"""The dashboard's web server: one static page, one JSON endpoint, plotly.js from the plotly package.

    GET /                  the page (static/index.html + static/dashboard.js)
    GET /api/metrics       every panel's data (metrics.collect_metrics, cached 2 s; 5 min on Athena)
    GET /static/plotly.min.js   the plotly.js bundled in the `plotly` wheel: nothing from a CDN

Bound to the loopback interface only: it has no authentication, and shows the business's numbers.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sales_ops.dashboard.metrics import MetricsCache
from sales_ops.guard import foreign_origin, loopback_host
from sales_ops.local.reachable import EmbeddedAwsDown
from sales_ops.query.athena import MAX_REUSE_MINUTES
from sales_ops.settings import Settings
from sales_ops.targets import engine_for

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8050
REFRESH_SECONDS = 5
LOCAL_CACHE_SECONDS = 2.0
# On AWS a refresh runs seven Athena queries, five of them over orders_live's raw tail, and Athena
# bills 10 MB at least per query: one result per 5 minutes for every page keeps an open tab well under
# the idle stack's cost (docs/deploy-aws.md, docs/design.md §12).
ATHENA_CACHE_SECONDS = 300.0
NO_STORE = {"Cache-Control": "no-store"}

log = logging.getLogger(__name__)


def plotly_js() -> Path:
    """plotly.min.js as shipped inside the plotly Python package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package ({path})")
    return path


def create_app(
    settings: Settings, cache_seconds: float | None = None, refresh_seconds: int = REFRESH_SECONDS
) -> LocalOnly:
    """The dashboard app; metrics are cached `cache_seconds` (default: 2 s local, 300 s Athena)."""
    if cache_seconds is None:
        # Athena bills every query (10 MB minimum each): on AWS, all pages share one result.
        cache_seconds = LOCAL_CACHE_SECONDS if settings.is_local else ATHENA_CACHE_SECONDS
    # Athena's result reuse, as old as the cache: a second dashboard (or a restarted one) within that
    # time reads the stored results instead of scanning again (docs/design.md §12).
    # Whole minutes, rounded down: a reused result is never older than a cached one may be.
    reuse_minutes = min(int(cache_seconds // 60), MAX_REUSE_MINUTES)
    engine_factory = functools.partial(engine_for, result_reuse_minutes=reuse_minutes)
    cache = MetricsCache(settings, ttl=cache_seconds, engine_factory=engine_factory)
    plotly_path = plotly_js()

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    # A sync endpoint: Starlette runs it in its thread pool, so slow queries never block the loop.
    def metrics(request: Request) -> Response:
        try:
            body = cache.get()
        except EmbeddedAwsDown as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers=NO_STORE)
        except Exception:  # e.g. no credentials for Athena: the details go to the log, not the page
            log.exception("dashboard metrics failed")
            error = "metrics unavailable: see the dashboard's log"
            return JSONResponse({"error": error}, status_code=503, headers=NO_STORE)
        return JSONResponse({**body, "refresh_seconds": refresh_seconds}, headers=NO_STORE)

    def plotly(request: Request) -> Response:
        return FileResponse(
            plotly_path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        cache.close()

    routes = [
        Route("/", index),
        Route("/api/metrics", metrics),
        Route("/static/plotly.min.js", plotly),  # before the mount, which would 404 it
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return LocalOnly(Starlette(routes=routes, lifespan=lifespan))


class LocalOnly:
    """ASGI guard: a loopback Host only (no DNS rebinding), and no cross-site calls to the API.

    Starlette's TrustedHostMiddleware cuts the port at the first ':' and so cannot match [::1].
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            reason = None
            if not loopback_host(headers.get("host", "")):
                reason = "Host header is not 127.0.0.1/localhost"
            elif scope["path"].startswith("/api/"):
                same = {f"http://{headers['host'].lower()}"}
                reason = foreign_origin(headers, same)
            if reason:
                await JSONResponse({"error": reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_bind(host: str, port: int) -> None:
    """ValueError, with what to do, unless the dashboard can listen on host:port."""
    if not is_loopback(host):
        raise ValueError(f"the dashboard binds to a loopback address only (127.0.0.1, ::1), not {host!r}")
    if not port_free(host, port):
        raise ValueError(f"port {port} on {host} is taken: pass --port")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Run the dashboard until interrupted (loopback hosts only)."""
    import uvicorn

    check_bind(host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
