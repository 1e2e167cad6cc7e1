"""A Slack-style webhook receiver on 127.0.0.1 for the alert tests: records every JSON POST."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict] = []


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A local HTTP server answering 200 to POSTs; `messages` holds the decoded JSON bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver = Receiver(f"http://127.0.0.1:{server.server_port}/hooks/alerts")
    receiver.messages = received
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
