"""The single writer of one run's stream.

Events are stamped (v3 envelope) as they are emitted and handed to one flusher task that appends
whatever has accumulated in one store call, carrying the expected sequence, so a run makes one
append per burst of events rather than one per event and a stale writer is fenced by the log.
Streaming detail (``text_delta``, ``thinking_*``) waits for the next other event or 3 s. The
terminal event takes whatever is still pending into its own append: a run whose workflow returns
right after its last operation writes that operation's events and ``run_end`` together.

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
# Turns of the event loop the flusher lets pass before it takes a batch: whatever the run's other
# tasks emit meanwhile joins it. An operation's task runs in the turn after the step that started
# it, and a workflow that returns after its last operation reaches run_end three or four turns
# after that operation's last event: within this many, end() finds those events still pending
# and writes them with run_end in one append (a run of `summarize` on the fake model makes one
# append, not two; on a real model two, not three: three turns were enough in both, measured
# on 2026-12-02). Each turn costs the flusher one step.
FLUSH_TURNS: Final = 4
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
        self._ending = False  # end() has begun: the flusher takes no further batch
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
        # A few turns of the event loop first (see FLUSH_TURNS): a run makes fewer, larger
        # appends, each its own store transaction.
        for _ in range(FLUSH_TURNS):
            await asyncio.sleep(0)
        while self._pending and self.failure is None and not self._ending:
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
                    self._refused(error)
                    return
                # Kept, so that end() writes them ahead of run_end if the store comes back.
                self._pending = batch + self._pending
                logger.error("run %s: appending events failed: %s", self.run_id, error)
                return

    def _refused(self, error: BaseException) -> None:
        """The log refused this writer as stale (see ``fenced``): say so, and tell its owner."""
        logger.warning("run %s: another writer ended it: %s", self.run_id, error)
        if self.on_fenced is not None:
            self.on_fenced()

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
        if self._pending and not self._ending:
            # Nothing pending (a run's events are usually written by the time it ends): no
            # flusher task is started just to find that out. Once ending, end() writes them.
            self._kick()
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
            if self._pending and self.failure is None and not self._ending:
                self._kick()

    async def end(
        self, type: str, payload: dict[str, Any], *, at_ms: int | None = None
    ) -> dict[str, Any]:
        """Append whatever is pending and the terminal event, and close the stream, in one
        transaction (after an append already in flight). ``at_ms`` is the event's timestamp,
        when its payload was computed from that instant.

        After a store failure the terminal event is still attempted (a run must end); only a
        fenced writer, which no longer owns the stream, gives up. After an unstorable event,
        nothing emitted since is written and the terminal event takes the next index; if the
        terminal event itself cannot be stored, an errored one saying so is written instead;
        if the store fails that append, an errored one naming the failure is tried once more.
        """
        self._ending = True
        # The flusher's append in flight ends first (the log's order); it takes nothing more.
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
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
        except (StreamConflictError, StreamClosedError) as error:
            self.failure = error  # fenced: another writer owns the stream
            self._refused(error)
            raise
        except Exception as error:
            if self.failure is not None:
                raise  # failed before: the run is left to recovery
            # Nothing of the batch was written; it is tried once more, as it would have been
            # had its events before the terminal one failed in an append of their own: with
            # the run's own error, or else errored with the store's failure.
            self.failure = error
            logger.error("run %s: appending events failed: %s", self.run_id, error)
            if event.get("isError"):
                await self._append(batch, close=True)
                return event
            return await self._end_errored(batch, len(batch) - 1, error, at_ms)
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
        return await self._end_errored(batch, min(position, len(batch) - 1), failure, at_ms)

    async def _end_errored(
        self, batch: list[dict[str, Any]], keep: int, failure: BaseException, at_ms: int | None
    ) -> dict[str, Any]:
        """Append the first ``keep`` events of the terminal ``batch`` and, in place of its last
        (the terminal event), an errored one naming ``failure`` (plain data only, so it always
        encodes), at the index that follows them."""
        last = batch[-1]
        self._next_index = int(last["eventIndex"]) - (len(batch) - 1) + keep
        self._ended = False
        payload: dict[str, Any] = {"runId": self.run_id, "result": None, "isError": True}
        payload["error"] = error_payload(failure)
        if isinstance(last.get("durationMs"), int):
            payload["durationMs"] = last["durationMs"]
        event = self._stamp(str(last["type"]), payload, at_ms)
        self._ended = True
        await self._append([*batch[:keep], event], close=True)
        return event
