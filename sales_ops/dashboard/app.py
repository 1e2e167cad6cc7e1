"""The dashboard's web server: one static page, one JSON endpoint, plotly.js from the plotly package.

    GET /                  the page (static/index.html + static/dashboard.js)
    GET /api/metrics       every panel's data (metrics.collect_metrics, cached 2 s; 5 min on Athena)
    GET /static/plotly.min.js   the plotly.js bundled in the `plotly` wheel: nothing from a CDN

Bound to the loopback interface only: it has no authentication, and shows the business's numbers.
"""

from __future__ import annotations

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

from sales_ops.dashboard.metrics import MetricsCache
from sales_ops.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8050
REFRESH_SECONDS = 5
LOCAL_CACHE_SECONDS = 2.0
# Athena bills 10 MB at least per query and a refresh runs 7: 30 s would cost ~$1 a day per open
# tab, more than the idle stack (issue 16); 5 minutes costs a tenth of that (docs/deploy-aws.md).
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
) -> Starlette:
    """The dashboard app; metrics are cached `cache_seconds` (default: 2 s local, 300 s Athena)."""
    if cache_seconds is None:
        # Athena bills every query (10 MB minimum each): on AWS, all pages share one result per 30 s.
        cache_seconds = LOCAL_CACHE_SECONDS if settings.is_local else ATHENA_CACHE_SECONDS
    cache = MetricsCache(settings, ttl=cache_seconds)
    plotly_path = plotly_js()

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    # A sync endpoint: Starlette runs it in its thread pool, so slow queries never block the loop.
    def metrics(request: Request) -> Response:
        try:
            body = cache.get()
        except Exception as exc:  # e.g. no credentials for Athena: say so, in JSON, to the page
            log.exception("dashboard metrics failed")
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503, headers=NO_STORE)
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
    return Starlette(routes=routes, lifespan=lifespan)


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
