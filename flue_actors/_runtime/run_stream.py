"""The single writer of one run's stream.

Events are stamped (v3 envelope) as they are emitted and handed to one flusher task that appends
whatever has accumulated in one store call, carrying the expected sequence, so a run makes one
append per burst of events rather than one per event and a stale writer is fenced by the log.
Streaming detail (``text_delta``, ``thinking_*``) waits for the next other event or 3 s.

Whatever a run emits, its stream ends with ``run_end`` and its ``eventIndex`` has no gap. Text of
any kind is storable (``jsonvalue.dumps``); an event that is not JSON data at all is not. Stores
encode a batch before anything is written, so such an event costs the run nothing already
durable: the events before it are written, it and everything after are dropped, and ``run_end``
(errored ``event_not_storable``) takes the first index that was not written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._clock import Clock, format_timestamp
from .._events import BUFFERED_EVENT_TYPES, EVENT_VERSION, error_payload
from .._harness.replay import Replay
from .._jsonvalue import dumps
from .._observation import EventContext, dispatch, observing
from ..errors import EventNotStorableError, FlueError, StreamClosedError, StreamConflictError
from ..store import EventStore, run_stream

__all__ = ["ANSWER_TYPES", "RunStream"]

# The events a resumed run's replay answers its operations from: a model turn's, a tool's or a
# command's outcome (see ``harness.replay``).
ANSWER_TYPES: Final = frozenset({"turn", "tool"})

logger = logging.getLogger("flue_actors.run")
DELTA_FLUSH_SECONDS: Final = 3.0
# What the encoder raises for a value that is not JSON data: TypeError for objects, ValueError
# for non-finite numbers, RecursionError for nesting deeper than the stack allows.
_ENCODING_FAILURES: Final = (TypeError, ValueError, RecursionError)


def _unstorable(batch: list[dict[str, Any]]) -> tuple[int, BaseException] | None:
    """The position of the first event of ``batch`` the store's encoder refuses, and why."""
    for position, event in enumerate(batch):
        try:
            dumps(event)
        except _ENCODING_FAILURES as error:
            return position, error
    return None


def _not_storable(event: dict[str, Any], cause: BaseException) -> EventNotStorableError:
    reason = f"{type(cause).__name__}: {cause}"[:500]
    return EventNotStorableError(
        event_type=str(event.get("type")), event_index=int(event["eventIndex"]), reason=reason
    )


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
        self._durable_index = next_index  # the eventIndex that follows the last one written
        self._last_answer = -1  # the eventIndex of the last answer (see ANSWER_TYPES) emitted
        self._pending: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._delta_timer: asyncio.TimerHandle | None = None
        self._ended = False
        self._sealed = False
        self.failure: BaseException | None = None
        # Called once when the log refuses this writer (see ``fenced``), so its owner can stop
        # work that can no longer be recorded.
        self.on_fenced: Callable[[], None] | None = None
        # A resumed run: what the log already holds, matched instead of written until the
        # replay goes live (see ``harness.replay``).
        self.replay: Replay | None = None
        # The run as observers see it; None: not observed (a stream written for recovery).
        self.observed_as: EventContext | None = None

    @property
    def fenced(self) -> bool:
        """True once the log refused this writer as stale (another writer appended, or ended and
        closed the stream: a cancellation or recovery from elsewhere): it must not write again."""
        return isinstance(self.failure, (StreamConflictError, StreamClosedError))

    def _stamp(
        self, type: str, payload: dict[str, Any], at_ms: int | None = None
    ) -> dict[str, Any]:
        if self._ended:
            raise RuntimeError(f"run {self.run_id} has ended; nothing may be emitted after run_end")
        index = self._next_index
        self._next_index = index + 1
        # One literal (a key the payload already has keeps its place and takes the new value,
        # as item assignment would): every event of every run is made here.
        return {
            "type": type,
            **payload,
            "v": EVENT_VERSION,
            "eventIndex": index,
            "timestamp": format_timestamp(self._clock.now_ms() if at_ms is None else at_ms),
            "runId": self.run_id,
        }

    def emit(
        self, type: str, payload: dict[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        if self._sealed:
            return {"type": type, **payload}  # stopped for a resumption: nothing more written
        replay = self.replay
        if replay is not None and not replay.live:
            # A resumed run: what the log holds is matched, not written (nor observed) again.
            recorded = replay.take(type, payload)
            if recorded is not None:
                return recorded
            if replay.divergence is not None:
                return {"type": type, **payload}  # diverged: nothing more is written
        event = self._stamp(type, payload)
        self._pending.append(event)
        if type in ANSWER_TYPES:
            self._last_answer = event["eventIndex"]
        if self.observed_as is not None:
            dispatch(event, self.observed_as, detail)
        if type in BUFFERED_EVENT_TYPES:
            if self._delta_timer is None:
                loop = asyncio.get_running_loop()
                self._delta_timer = loop.call_later(DELTA_FLUSH_SECONDS, self._kick)
        else:
            self._kick()
        return event

    def announce(self, type: str, payload: dict[str, Any]) -> None:
        """A live-only event: enveloped (without an ``eventIndex``, which only stored events
        take) and handed to observers, never to the store."""
        if self.observed_as is None or not observing():
            return
        event = {"type": type, **payload, "v": EVENT_VERSION}
        event["timestamp"] = format_timestamp(self._clock.now_ms())
        event["runId"] = self.run_id
        dispatch(event, self.observed_as)

    def _kick(self) -> None:
        if self._delta_timer is not None:
            self._delta_timer.cancel()
            self._delta_timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._drain())

    @property
    def _dropping(self) -> bool:
        """True once an unstorable event was met: nothing more is written before ``run_end``."""
        return isinstance(self.failure, EventNotStorableError)

    async def _append(self, batch: list[dict[str, Any]], *, close: bool = False) -> None:
        await self._store.append(self._path, batch, expected_seq=self._next_seq, close=close)
        self._next_seq += len(batch)
        if batch:
            self._durable_index = int(batch[-1]["eventIndex"]) + 1

    async def _drain(self) -> None:
        # One turn of the event loop first: whatever the run's other tasks emit in the same
        # turn (an operation's task runs right after the step that started it) joins this
        # batch, so a run makes fewer, larger appends, each its own store transaction.
        await asyncio.sleep(0)
        while self._pending and self.failure is None:
            batch, self._pending = self._pending, []
            try:
                await self._append(batch)
            except Exception as error:
                # Nothing more may be written: after a conflict another writer owns the stream,
                # after a store failure the order of what follows could not be kept.
                found = None if isinstance(error, FlueError) else _unstorable(batch)
                if found is not None:
                    await self._keep_storable(batch, *found)
                    return
                self.failure = error
                if self.fenced:
                    logger.warning("run %s: another writer ended it: %s", self.run_id, error)
                    if self.on_fenced is not None:
                        self.on_fenced()
                    return
                # Kept, so that end() writes them ahead of run_end if the store comes back.
                self._pending = batch + self._pending
                logger.error("run %s: appending events failed: %s", self.run_id, error)
                return

    async def _keep_storable(
        self, batch: list[dict[str, Any]], position: int, cause: BaseException
    ) -> None:
        """Write the events before the unstorable one; the run will end on its error."""
        failure = _not_storable(batch[position], cause)
        logger.error("run %s: %s", self.run_id, failure.message)
        try:
            if position:
                await self._append(batch[:position])
        except Exception as error:
            self.failure = error
            self._pending = batch[:position] + self._pending
            logger.error("run %s: appending events failed: %s", self.run_id, error)
            return
        self.failure = failure
        self._pending = []

    def seal(self) -> None:
        """Write nothing emitted from now on (what was emitted before still is): the run is
        stopped at a shutdown, to be resumed by replay, and the aborts its stopping causes
        must not enter its log as the answers of its operations."""
        self._sealed = True

    @property
    def answers_pending(self) -> bool:
        """Whether an answer the run has acted on (a model turn's or a tool's) is not in the
        log yet. See ``harness.replay.write_ahead``."""
        return self._last_answer >= self._durable_index and self.failure is None

    async def flush(self) -> None:
        """Wait until everything emitted so far is durable (or the writer has failed)."""
        if self._pending:
            # Nothing pending (a run's events are usually written by the time it ends): no
            # flusher task is started just to find that out.
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
        fenced writer, which no longer owns the stream, gives up. After an unstorable event,
        nothing emitted since is written and the terminal event takes the next index; if the
        terminal event itself cannot be stored, an errored one saying so is written instead.
        """
        await self.flush()
        if self.fenced:
            assert self.failure is not None
            raise self.failure
        if self._sealed:  # stopped to be resumed: the resumption ends it
            raise asyncio.CancelledError()
        if self._dropping:
            self._pending = []
            self._next_index = self._durable_index
        event = self._stamp(type, payload, at_ms)
        self._ended = True
        batch, self._pending = [*self._pending, event], []
        try:
            await self._append(batch, close=True)
        except _ENCODING_FAILURES:
            found = _unstorable(batch)
            if found is None:
                raise
            return await self._end_unstorable(batch, *found, at_ms=at_ms)
        return event

    async def _end_unstorable(
        self,
        batch: list[dict[str, Any]],
        position: int,
        cause: BaseException,
        *,
        at_ms: int | None,
    ) -> dict[str, Any]:
        """The terminal batch held an unstorable event: write what precedes it and an errored
        terminal event (plain data only, so it always encodes) in its place."""
        failure = _not_storable(batch[position], cause)
        logger.error("run %s: %s", self.run_id, failure.message)
        last = batch[-1]
        kept = batch[: min(position, len(batch) - 1)]
        self._next_index = int(last["eventIndex"]) - (len(batch) - 1) + len(kept)
        self._ended = False
        payload: dict[str, Any] = {"runId": self.run_id, "result": None, "isError": True}
        payload["error"] = error_payload(failure)
        if isinstance(last.get("durationMs"), int):
            payload["durationMs"] = last["durationMs"]
        event = self._stamp(str(last["type"]), payload, at_ms)
        self._ended = True
        await self._append([*kept, event], close=True)
        return event
