"""HTTP/1.1 keep-alive for the emulator's WSGI server.

werkzeug's development server answers every request with `Connection: close` (its run_wsgi says
why: http.server cannot drain an unread request body before reading the next request line), so
every botocore call, pooled or not, opened a new TCP connection and the server started a new
thread for it. `KeepAliveHandler` serves the same responses (status, headers, bytes; werkzeug's
chunked framing when the app gives no Content-Length) but keeps the connection open when that is
safe: the request body was read to its end (or a short rest is drained here first), the response
is framed (Content-Length or chunked), the client did not ask to close, nothing failed, and the
server is not stopping. Otherwise it closes as werkzeug did, with its bounded drain of what the
client is still sending (a 413 to a 21 MiB body is read, not reset). Idle connections are closed
after IDLE_TIMEOUT_S.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.exceptions import InternalServerError
from werkzeug.wsgi import LimitedStream

IDLE_TIMEOUT_S = 300.0  # an idle keep-alive connection's thread waits this long for a request
DRAIN_MAX = 1 << 20  # an unread request body up to this size is read so the connection stays open
_NO_BODY = frozenset({204, 304})
_werkzeug_log = logging.getLogger("werkzeug")


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (its header handling kept) with keep-alive connections."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    _date: tuple[int, str] = (-1, "")  # the last second's Date header text

    def setup(self) -> None:
        super().setup()
        # A response's last segment must not wait for the client's delayed ACK of the one before
        # (Nagle: 40 ms a request on a kept connection; a closed one flushed at once).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if not environ.get("wsgi.input_terminated"):  # chunked input is already framed by werkzeug
            length = environ.get("CONTENT_LENGTH", "")
            size = int(length) if length.isdigit() else 0
            environ["wsgi.input"] = LimitedStream(self.rfile, size)  # type: ignore[arg-type]  # a BufferedReader
        self._body = environ["wsgi.input"]
        return environ

    def body_read(self) -> bool:
        """Whether the request body has been read to its end, draining a short rest here."""
        body = self._body
        if isinstance(body, LimitedStream):
            if body.limit - body._pos <= DRAIN_MAX:
                body.exhaust()
            return body.is_exhausted
        return bool(getattr(body, "_done", False))

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        response = _Response(self, environ)
        try:
            response.execute(self.server.app)
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
        except Exception as exc:
            self.close_connection = True
            if self.server.passthrough_errors:
                raise
            if response.status_sent is None:
                response.status_set = response.headers_set = None
                response.execute(InternalServerError())
            from werkzeug.debug.tbtools import DebugTraceback

            self.server.log("error", f"Error on request:\n{DebugTraceback(exc).render_traceback_text()}")
        if response.declared is not None and response.declared != response.written:
            self.close_connection = True  # a body that is not what its header said: never reuse
        if self.close_connection:
            self.drain()

    def drain(self) -> None:
        """werkzeug's drain before a close: read what the client still sends, while it sends, so
        that it sees the response rather than a reset (up to 1,000 reads or 10 GB)."""
        total = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            for _ in range(1001):
                if not selector.select(timeout=0.01):
                    break
                data = self.rfile.read(10_000_000)
                total += len(data)
                if not data or total >= 10_000_000_000:
                    break

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header, formatted once a second rather than for every response (same text:
        # http.server's formatdate drops the fraction).
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = KeepAliveHandler._date  # one tuple, replaced whole: safe across threads
        if second != now:
            text = super().date_time_string(now)
            KeepAliveHandler._date = (now, text)
        return text

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # werkzeug formats each request line (IRI decoding, escaping) before its logger drops it:
        # the emulator runs that logger at WARNING, so skip the work unless INFO is on.
        if _werkzeug_log.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def log_error(self, format: str, *args: Any) -> None:
        if not format.startswith("Request timed out"):  # an idle keep-alive connection: normal
            super().log_error(format, *args)


class _Response:
    """One response written as werkzeug's run_wsgi writes it, with the connection's fate decided
    when the headers go out."""

    def __init__(self, handler: KeepAliveHandler, environ: dict[str, Any]) -> None:
        self.handler, self.environ = handler, environ
        self.status_set: str | None = None
        self.headers_set: list[tuple[str, str]] | None = None
        self.status_sent: str | None = None
        self.chunked = False
        self.bodiless = False
        self.declared: int | None = None
        self.written = 0

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self.status_sent is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers_set:
            raise AssertionError("Headers already set")
        self.status_set, self.headers_set = status, headers
        return self.write

    def send_headers(self) -> None:
        h = self.handler
        assert self.status_set is not None and self.headers_set is not None, "write() before start_response"
        self.status_sent = self.status_set
        code_str, _, msg = self.status_sent.partition(" ")
        code = int(code_str)
        h.send_response(code, msg)
        keys = set()
        for key, value in self.headers_set:
            h.send_header(key, value)  # a `Connection: close` here sets h.close_connection too
            keys.add(key.lower())
            if key.lower() == "content-length" and value.isdigit():
                self.declared = int(value)
        head = self.environ["REQUEST_METHOD"] == "HEAD"
        self.bodiless = head or 100 <= code < 200 or code in _NO_BODY
        if self.bodiless:
            self.declared = None  # a HEAD's Content-Length describes the object, not this message
        elif "content-length" not in keys:
            self.chunked = True
            h.send_header("Transfer-Encoding", "chunked")
        closing = bool(getattr(h.server, "closing", False)) or not h.body_read()
        h.close_connection = h.close_connection or closing  # or the client's or the app's wish
        if h.close_connection and "connection" not in keys:
            h.send_header("Connection", "close")  # as werkzeug said on every response
        # http.server's end_headers() without its flush: the head goes out with the first data.
        h._headers_buffer.append(b"\r\n")

    def write(self, data: bytes) -> None:
        h = self.handler
        if self.status_sent is None:
            self.send_headers()
        assert isinstance(data, bytes), "applications must write bytes"
        out = b"".join(h._headers_buffer)  # empty after the first write
        h._headers_buffer = []  # type: ignore[attr-defined]  # http.server makes it in send_response
        if data and not self.bodiless:
            out += b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
            self.written += len(data)
        if out:
            h.wfile.write(out)

    def execute(self, app: Any) -> None:
        chunks = app(self.environ, self.start_response)
        try:
            for data in chunks:
                self.write(data)
            if self.status_sent is None:
                self.write(b"")
            if self.chunked:
                self.handler.wfile.write(b"0\r\n\r\n")
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
