"""Identical concurrent reads of a run's stream, served by one store read.

Live readers of one run sit at the same offset and are woken by the same append; without this,
hundreds of SSE readers would each read the same page from the store and render the same JSON.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..events import check_event_version
from ..runtime import Runtime
from ..store import StreamPage
from .protocol import events_json

__all__ = ["SharedPage", "SharedReads"]


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


def checked_json(page: StreamPage) -> str:
    """The page's events as a JSON array; a stored event of another version fails the read."""
    for event in page.events:
        check_event_version(event.data)
    return events_json(page.events)
