"""The Durable Streams read protocol's small pieces: headers, cursors, ETags, SSE framing, and
the reading of query values and the writing of JSON bodies.

Query values are read as Flue's JavaScript reads them: digits are ASCII digits (Python's ``\\d``
and ``str.isdigit`` also take other scripts' digits and superscripts, which ``int`` then refuses or
reads differently) and nothing trails them (``$`` would let a newline through into a header).
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Sequence
from typing import Any, Final

from fastapi.responses import JSONResponse

from .._jsonvalue import dumps
from ..store import StoredEvent, is_offset

__all__ = [
    "SECURITY_HEADERS",
    "STREAM_CLOSED",
    "STREAM_CURSOR",
    "STREAM_NEXT_OFFSET",
    "STREAM_UP_TO_DATE",
    "JsonResponse",
    "etag",
    "events_json",
    "is_read_offset",
    "next_cursor",
    "sse_frame",
    "tail_count",
    "whole_number",
]

STREAM_NEXT_OFFSET: Final = "Stream-Next-Offset"
STREAM_UP_TO_DATE: Final = "Stream-Up-To-Date"
STREAM_CLOSED: Final = "Stream-Closed"
STREAM_CURSOR: Final = "Stream-Cursor"
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
_CURSOR_EPOCH_MS: Final = 1728432000000
_CURSOR_INTERVAL_MS: Final = 20_000
_DIGITS: Final = re.compile("[0-9]+")
_TAIL: Final = re.compile("[1-9][0-9]*")
# More digits than any count or sequence here can need; longer numbers are clamped, not parsed
# (int() refuses more than 4,300 digits, and stores hold 64-bit integers).
_MAX_DIGITS: Final = 18


class JsonResponse(JSONResponse):
    """A JSON body written by :func:`~flue_actors._jsonvalue.dumps`, so any text in it (lone
    surrogates included, as ``\\ud800`` escapes) is encodable and reads back as it was."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def whole_number(text: str, *, clamp: int) -> int | None:
    """``text`` as a non-negative integer (at most ``clamp``) if it is ASCII digits only."""
    if _DIGITS.fullmatch(text) is None:
        return None
    digits = text.lstrip("0")
    return min(int(digits or "0"), clamp) if len(digits) <= _MAX_DIGITS else clamp


def tail_count(text: str) -> int | None:
    """A ``tail`` value (``^[1-9][0-9]*$``); a count past any stream's length reads it all."""
    if _TAIL.fullmatch(text) is None:
        return None
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def is_read_offset(offset: str) -> bool:
    """``-1``, ``now`` or a stream offset (a sequence of at most 18 significant digits)."""
    return offset == "now" or is_offset(offset)


def next_cursor(now_ms: int, client_cursor: str | None = None) -> str:
    """The long-poll cursor: 20 s intervals since Flue's epoch; a client already at or past the
    current interval is moved 1-180 intervals ahead so caches never serve it a stale poll."""
    current = (now_ms - _CURSOR_EPOCH_MS) // _CURSOR_INTERVAL_MS
    client = whole_number(client_cursor, clamp=10**_MAX_DIGITS) if client_cursor else None
    if client is None or client < current:
        return str(current)
    return str(client + random.randint(1, 180))


def etag(path: str, start_offset: str, end_offset: str, closed: bool) -> str:
    encoded = base64.b64encode(path.encode("utf-8")).decode("ascii")
    return f'"{encoded}:{start_offset}:{end_offset}{":c" if closed else ""}"'


def events_json(events: Sequence[StoredEvent]) -> str:
    """The JSON array of events, from their stored text: nothing is re-serialized."""
    return "[" + ",".join(event.raw for event in events) + "]"


def sse_frame(event: str, payload: str) -> str:
    lines = payload.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return f"event: {event}\n" + "\n".join(f"data:{line}" for line in lines) + "\n\n"
