"""The Durable Streams read protocol's small pieces: headers, cursors, ETags, SSE framing."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from typing import Final

from ..store import StoredEvent

__all__ = [
    "SECURITY_HEADERS",
    "STREAM_CLOSED",
    "STREAM_CURSOR",
    "STREAM_NEXT_OFFSET",
    "STREAM_UP_TO_DATE",
    "etag",
    "events_json",
    "next_cursor",
    "sse_frame",
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


def next_cursor(now_ms: int, client_cursor: str | None = None) -> str:
    """The long-poll cursor: 20 s intervals since Flue's epoch; a client already at or past the
    current interval is moved 1-180 intervals ahead so caches never serve it a stale poll."""
    current = (now_ms - _CURSOR_EPOCH_MS) // _CURSOR_INTERVAL_MS
    if not client_cursor:
        return str(current)
    try:
        client = int(client_cursor, 10)
    except ValueError:
        return str(current)
    if client < current:
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
