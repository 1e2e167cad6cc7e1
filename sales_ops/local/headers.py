"""Request headers read without the email package's parser, in the emulator process only.

http.server reads each request's headers with `http.client.parse_headers`, which hands them to
`email.parser` (a feed parser built per request, a generator per line): a fifth of the emulator's
Python CPU on a small call. The plain form every client here sends (one `Name: value` a line, no
folding, no bare CR, not multipart) is read straight into the same `HTTPMessage` (compat32: the
name as sent, the value without leading blanks or line end, an empty payload). Anything else goes
to the standard parser unchanged, with the same lines.
"""

from __future__ import annotations

import http.client
import re
from email.message import Message
from typing import Any

_PLAIN = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*)\r?\n")
_PARSED_AS_PARTS = ("multipart/", "message/")
_standard = http.client.parse_headers


def parse_headers(fp: Any, _class: type[Message] = http.client.HTTPMessage) -> Message:
    """`http.client.parse_headers`: the same message, read without email.parser when plain."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # the same limits
    message = _plain(lines, _class)
    if message is None:
        hstring = b"".join(lines).decode("iso-8859-1")
        return http.client.email.parser.Parser(_class=_class).parsestr(hstring)  # type: ignore[attr-defined]
    return message


def _plain(lines: list[bytes], cls: type[Message]) -> Message | None:
    if not lines or lines[-1] not in (b"\r\n", b"\n"):
        return None  # the stream ended before the blank line
    message = cls()
    for line in lines[:-1]:
        match = _PLAIN.fullmatch(line.decode("iso-8859-1"))
        if match is None:
            return None
        name, value = match.groups()
        if name.lower() == "content-type" and value.lower().startswith(_PARSED_AS_PARTS):
            return None
        message.set_raw(name, value)
    message.set_payload("")
    return message


def install() -> None:
    """Read request headers with `parse_headers` (http.server looks it up on http.client)."""
    http.client.parse_headers = parse_headers  # type: ignore[assignment]
