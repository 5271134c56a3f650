"""Identical concurrent reads of a run's stream, served by one store read.

Live readers of one run sit at the same offset and are woken by the same append; without this,
hundreds of SSE readers would each read the same page from the store.
"""

from __future__ import annotations

import asyncio

from ..runtime import Runtime
from ..store import StreamPage

__all__ = ["SharedReads"]


class SharedReads:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._in_flight: dict[tuple[str, str], asyncio.Future[StreamPage]] = {}

    async def read(self, run_id: str, offset: str) -> StreamPage:
        key = (run_id, offset)
        flight = self._in_flight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._runtime.read_events(run_id, offset=offset))
            self._in_flight[key] = flight
            flight.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # Shielded: one reader leaving must not cancel the read the others are waiting for.
        return await asyncio.shield(flight)
