"""Identical concurrent reads of a run's stream, served by one store read.

Live readers of one run sit at the same offset and are woken by the same append; without this,
hundreds of SSE readers would each read the same page from the store and render the same JSON.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Final

from .._events import EVENT_VERSION, check_event_version
from .._runtime import Runtime
from ..store import StreamPage
from ._protocol import events_json

__all__ = ["SharedPage", "SharedReads", "checked_json", "is_current_version"]

# The envelope fields the run's writer appends last, as they end every event it stores. Stored
# text is JSON (what the writer serialized), and strings matched here hold no quote or backslash,
# so reading back from the final brace every token is forced: these are members of the top-level
# object, and nothing after them names "v" again. Parsing each event only to find its version
# was about a fifth of the CPU of a catch-up read.
_ENVELOPE_START: Final = f',"v":{EVENT_VERSION},"eventIndex":'
_ENVELOPE_TAIL: Final = re.compile(
    re.escape(_ENVELOPE_START) + r'[0-9]+,"timestamp":"[^"\\]*"(?:,"runId":"[^"\\]*")?\}'
)


@dataclass(frozen=True, slots=True)
class SharedPage:
    page: StreamPage
    json: str  # the events as a JSON array, version-checked, rendered once for every reader


class SharedReads:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._in_flight: dict[tuple[str, str], asyncio.Future[SharedPage]] = {}

    async def read(self, run_id: str, offset: str) -> SharedPage:
        key = (run_id, offset)
        flight = self._in_flight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._read(run_id, offset))
            self._in_flight[key] = flight
            flight.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # Shielded: one reader leaving must not cancel the read the others are waiting for.
        return await asyncio.shield(flight)

    async def _read(self, run_id: str, offset: str) -> SharedPage:
        page = await self._runtime.read_events(run_id, offset=offset)
        return SharedPage(page, checked_json(page))


def is_current_version(raw: str) -> bool:
    """Whether stored event text ends with this version's envelope, which makes its top-level
    ``v`` this version without parsing it. ``False`` says nothing: parse and check it."""
    start = raw.rfind(_ENVELOPE_START)
    return start > 0 and _ENVELOPE_TAIL.fullmatch(raw, start) is not None


def checked_json(page: StreamPage) -> str:
    """The page's events as a JSON array; a stored event of another version fails the read.
    Events are parsed for the check only when their text does not end as this version's do."""
    for event in page.events:
        if not is_current_version(event.raw):
            check_event_version(event.data)
    return events_json(page.events)
