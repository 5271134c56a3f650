"""The single writer of one run's stream.

Events are stamped (v3 envelope) as they are emitted and handed to one flusher task that appends
whatever has accumulated in one store call, carrying the expected sequence, so a run makes one
append per burst of events rather than one per event and a stale writer is fenced by the log.
Streaming detail (``text_delta``, ``thinking_*``) waits for the next other event or 3 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from ..clock import Clock, format_timestamp
from ..errors import StreamConflictError
from ..events import BUFFERED_EVENT_TYPES, EVENT_VERSION
from ..store import EventStore, run_stream

__all__ = ["RunStream"]

logger = logging.getLogger("flue_actors.run")
DELTA_FLUSH_SECONDS: Final = 3.0


class RunStream:
    def __init__(
        self,
        store: EventStore,
        run_id: str,
        clock: Clock,
        *,
        next_seq: int = 0,
        next_index: int = 0,
    ) -> None:
        self.run_id = run_id
        self._store = store
        self._path = run_stream(run_id)
        self._clock = clock
        self._next_seq = next_seq
        self._next_index = next_index
        self._pending: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._delta_timer: asyncio.TimerHandle | None = None
        self._ended = False
        self.failure: BaseException | None = None

    @property
    def fenced(self) -> bool:
        """True once the log refused this writer as stale: it must not write again."""
        return isinstance(self.failure, StreamConflictError)

    def _stamp(
        self, type: str, payload: dict[str, Any], at_ms: int | None = None
    ) -> dict[str, Any]:
        if self._ended:
            raise RuntimeError(f"run {self.run_id} has ended; nothing may be emitted after run_end")
        event = {"type": type, **payload}
        event["v"] = EVENT_VERSION
        event["eventIndex"] = self._next_index
        event["timestamp"] = format_timestamp(self._clock.now_ms() if at_ms is None else at_ms)
        event["runId"] = self.run_id
        self._next_index += 1
        return event

    def emit(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = self._stamp(type, payload)
        self._pending.append(event)
        if type in BUFFERED_EVENT_TYPES:
            if self._delta_timer is None:
                loop = asyncio.get_running_loop()
                self._delta_timer = loop.call_later(DELTA_FLUSH_SECONDS, self._kick)
        else:
            self._kick()
        return event

    def _kick(self) -> None:
        if self._delta_timer is not None:
            self._delta_timer.cancel()
            self._delta_timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending and self.failure is None:
            batch, self._pending = self._pending, []
            try:
                await self._store.append(self._path, batch, expected_seq=self._next_seq)
            except Exception as error:
                # Nothing more may be written: after a conflict another writer owns the stream,
                # after a store failure the order of what follows could not be kept.
                self.failure = error
                logger.error("run %s: appending events failed: %s", self.run_id, error)
                return
            self._next_seq += len(batch)

    async def flush(self) -> None:
        """Wait until everything emitted so far is durable (or the writer has failed)."""
        self._kick()
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
            if self._pending and self.failure is None:
                self._kick()

    async def end(
        self, type: str, payload: dict[str, Any], *, at_ms: int | None = None
    ) -> dict[str, Any]:
        """Flush, then append the terminal event and close the stream in one transaction.
        ``at_ms`` is the event's timestamp, when its payload was computed from that instant.

        After a store failure the terminal event is still attempted (a run must end); only a
        fenced writer, which no longer owns the stream, gives up.
        """
        await self.flush()
        if self.fenced:
            assert self.failure is not None
            raise self.failure
        event = self._stamp(type, payload, at_ms)
        self._ended = True
        batch, self._pending = [*self._pending, event], []
        await self._store.append(self._path, batch, expected_seq=self._next_seq, close=True)
        self._next_seq += len(batch)
        return event
