"""`sales-ops dashboard`: the live sales dashboard on a loopback address."""

from __future__ import annotations

from typing import Annotated

import typer

from sales_ops.cli_common import console, fail, friendly_errors, settings

app = typer.Typer()


@app.command("dashboard")
def dashboard(
    port: Annotated[int, typer.Option(help="Port on the loopback interface.", min=1, max=65535)] = 8050,
    host: Annotated[str, typer.Option(help="Loopback address to bind (127.0.0.1 or ::1).")] = "127.0.0.1",
) -> None:
    """Serve the live sales dashboard (refreshes itself every few seconds) until Ctrl-C."""
    from sales_ops.dashboard.app import check_bind, is_loopback, serve

    if not is_loopback(host):
        raise fail(f"--host {host}: the dashboard has no authentication, so it binds to loopback only", 2)
    with friendly_errors():
        cfg = settings()
        check_bind(host, port)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"dashboard on http://{shown}:{port} ({cfg.target} target); Ctrl-C stops it")
        serve(cfg, host=host, port=port)
