"""Answering a run's operations from its log, while its workflow function runs again.

A resumed run executes its workflow from the top. Every event the harness emits is matched
against the event the log holds at that position and is not written again; every operation
whose outcome the log holds (a model turn's ``turn``, a tool's or shell command's ``tool``) is
answered from that event instead of being performed. At the first operation the log lacks the
run goes live: from then on events are appended and operations performed.

Nothing is recorded for replay beyond Flue's own events: the ``turn`` event carries the model's
whole answer (``response.output``), the ``tool`` event a tool's result, so each message is in
the log once per event Flue defines for it and a request is rebuilt from the code and the
answers before it, never stored. Ids come from the run (``ids.run_ids``), so the replay draws
the same ones. Times are read anew: events written after the resumption carry the new owner's
clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, cast

from ..errors import ModelRequestError, ReplayDivergenceError
from ..models import Cost, ModelResponse, Usage

__all__ = [
    "Lane",
    "Replay",
    "describe",
    "lane_of",
    "recorded_batches",
    "recorded_turn",
    "replay_of",
    "response_from_turn",
    "usage_from_wire",
    "write_ahead",
]

# Events a replay steps over: streaming detail (best-effort, and never emitted again since the
# model is not called) and the resumptions of earlier lives.
_PASSED_OVER: Final = frozenset(
    {"text_delta", "thinking_start", "thinking_delta", "thinking_end", "run_resume"}
)
# The payload fields that say which operation an event belongs to; two events that differ in
# one of them are two different operations.
_IDENTITY: Final = (
    "operationKind",
    "toolName",
    "toolCallId",
    "turnId",
    "operationId",
    "taskId",
    "purpose",
    "harness",
    "session",
    "parentSession",
)


def _identity(type: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    key: list[Any] = [type]
    key.extend(payload.get(field) for field in _IDENTITY)
    message = payload.get("message")
    if isinstance(message, dict) and message.get("role") == "user":
        key.append(repr(message.get("content")))  # a changed prompt is another operation
    elif type == "log":
        key.append(message)
    return tuple(key)


def describe(event: dict[str, Any]) -> str:
    """An event as a divergence message names it: its type and what identifies it."""
    parts = [str(event.get("type"))]
    for field in ("operationKind", "purpose", "toolName"):
        if event.get(field) is not None:
            parts.append(str(event[field]))
    session = event.get("session")
    if session is not None:
        parts.append(f"(session {session!r})")
    message = event.get("message")
    if isinstance(message, dict) and message.get("role") == "user":
        texts = [b.get("text", "") for b in message.get("content") or () if isinstance(b, dict)]
        text = " ".join(texts)
        parts.append(repr(text if len(text) <= 60 else text[:57] + "..."))
    elif isinstance(message, str):
        parts.append(repr(message[:60]))
    details = (event.get("result") or {}).get("details") if event.get("type") == "tool" else None
    if isinstance(details, dict) and "command" in details:
        parts.append(repr(details["command"]))
    for field in ("turnId", "toolCallId", "operationId"):
        if event.get(field) is not None:
            parts.append(f"{field}={event[field]}")
    return " ".join(parts)


Lane = tuple[Any, Any]


def lane_of(payload: Mapping[str, Any]) -> Lane:
    """The sequence an event belongs to: its session (within its harness scope). A session runs
    one operation at a time, so its events come in one order in every life, whereas sessions
    run concurrently (``asyncio.gather``) interleave in whatever order their answers arrived.
    Events of no session (``run_start``, the workflow's own ``log``) form the run's lane."""
    return (payload.get("harness"), payload.get("session"))


class Replay:
    """The recorded events of one run and, per lane (``lane_of``), how far the replay has
    matched them. Each emission is matched against the next recorded event of its own lane, so
    concurrent sessions resume whatever order they are asked in this time; a different
    operation at a lane's position is still a divergence."""

    def __init__(self, events: list[dict[str, Any]], *, strict: bool = False) -> None:
        self._events = events
        # Each lane's recorded events, as positions in ``events``; streaming detail and earlier
        # resumptions are stepped over (never emitted again by a replayed operation).
        self._lanes: dict[Lane, list[int]] = {}
        for position, event in enumerate(events):
            if event["type"] not in _PASSED_OVER:
                self._lanes.setdefault(lane_of(event), []).append(position)
        self._cursors: dict[Lane, int] = dict.fromkeys(self._lanes, 0)
        self._unfinished = len(self._lanes)  # lanes with recorded events still to match
        # The kit's replay check: an operation the log lacks is a divergence, not a go-live.
        self.strict = strict
        # True once every lane has gone live: from then on everything is performed and written.
        self.live = not self._lanes and not strict
        self.divergence: ReplayDivergenceError | None = None
        self.on_divergence: Callable[[ReplayDivergenceError], None] | None = None
        self.replayed: list[dict[str, Any]] = []  # the events matched, in order
        # Of a resumed run: since when a batch its last life made may hold the first turn each
        # of its sessions performs live (its log's last event, or its admission; see
        # batch_records and ``heal_since``).
        self.heal_since_ms: int | None = None
        self._healed: set[Lane] = set()

    def heal_since(self, lane: Lane) -> int | None:
        """For the first turn ``lane`` (a session) performs live in a resumed run: since when a
        batch of the run's last life may hold it (``None`` for every later turn of the lane,
        or a run that was not resumed). Sessions run concurrently, so each may have had a turn
        in a batch at the crash; within one, turns come one at a time."""
        if self.heal_since_ms is None or lane in self._healed:
            return None
        self._healed.add(lane)
        return self.heal_since_ms

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._events

    def lane_live(self, where: Mapping[str, Any]) -> bool:
        """Whether the lane of ``where`` (an event's payload or its correlation) is live."""
        if self.live:
            return True
        lane = lane_of(where)
        positions = self._lanes.get(lane)
        return positions is None or self._cursors[lane] >= len(positions)

    def _next(self, lane: Lane) -> int | None:
        """The position of the lane's next recorded event; ``None``: the lane holds no more."""
        positions = self._lanes.get(lane)
        if positions is None:
            return None
        cursor = self._cursors[lane]
        return positions[cursor] if cursor < len(positions) else None

    def _advance(self, lane: Lane) -> None:
        self._cursors[lane] += 1
        if self._cursors[lane] == len(self._lanes[lane]):
            self._unfinished -= 1
            if not self._unfinished and not self.strict:
                self.live = True

    def _exhausted(self, requested: str) -> None:
        if self.strict:
            self._diverge(None, "nothing more (the run ended there)", requested)

    def _diverge(self, position: int | None, recorded: str, requested: str) -> None:
        if self.divergence is None:
            if position is not None:
                at = self._events[position].get("eventIndex", position)
            else:
                at = self._events[-1].get("eventIndex", -1) + 1 if self._events else 0
            self.divergence = ReplayDivergenceError(
                position=int(at), recorded=recorded, requested=requested
            )
            if self.on_divergence is not None:
                self.on_divergence(self.divergence)

    def take(self, type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded event this emission repeats (not to be written again); ``None`` when
        its lane has gone live (emit it for real) or the replay has diverged (drop it: see
        ``divergence``)."""
        if self.divergence is not None:
            return None
        lane = lane_of(payload)
        position = self._next(lane)
        if position is None:
            if type in _PASSED_OVER and lane in self._lanes:
                return None  # streaming detail of an operation asked again: written anew
            self._exhausted(describe({"type": type, **payload}))
            return None
        if type in _PASSED_OVER:
            return {"type": type, **payload}  # detail of a replayed operation: not written
        recorded = self._events[position]
        if _identity(recorded["type"], recorded) != _identity(type, payload):
            self._diverge(position, describe(recorded), describe({"type": type, **payload}))
            return None
        self._advance(lane)
        self.replayed.append(recorded)
        return recorded

    def answer(
        self,
        type: str,
        requested: str,
        matches: Callable[[dict[str, Any]], bool],
        where: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """The recorded outcome of the operation the code asks for in the lane of ``where``
        (that lane's next ``type`` event, which the harness then emits and ``take``
        consumes); ``None`` when the lane lacks it (perform it live). Anything else recorded
        there is a divergence, raised."""
        if self.live:
            return None
        if self.divergence is not None:
            raise self.divergence
        position = self._next(lane_of(where))
        if position is None:
            self._exhausted(requested)
            if self.divergence is not None:
                raise self.divergence
            return None
        recorded = self._events[position]
        if recorded["type"] != type or not matches(recorded):
            self._diverge(position, describe(recorded), requested)
            assert self.divergence is not None
            raise self.divergence
        return recorded

    def finish(self) -> None:
        """The workflow returned: anything a lane holds beyond is an operation the code no
        longer makes (the earliest in the log is named)."""
        if self.live or self.divergence is not None:
            return
        left = [p for p in map(self._next, self._lanes) if p is not None]
        if left:
            position = min(left)
            self._diverge(position, describe(self._events[position]), "the end of the run")


def replay_of(sink: object, where: Mapping[str, Any] | None = None) -> Replay | None:
    """The replay a harness's events go through, if its run (with ``where``, the lane of that
    event or correlation) is being replayed now."""
    replay = getattr(sink, "replay", None)
    if isinstance(replay, Replay) and not replay.live:
        if where is not None and not replay.strict and replay.lane_live(where):
            return None
        return replay
    return None


async def write_ahead(sink: object) -> None:
    """Before a model call: wait until the answers the run has acted on so far are in its log.

    Events are written behind the run (one append per burst), so without this a run whose
    writer lags (a busy store) could have several answered calls unwritten at a crash, and its
    resumption would pay for each again. With it, a crash repeats at most the call in flight.
    A run's first call waits for nothing (no answer before it); a sink without a log (tests,
    the kit) has no ``answers_pending``."""
    if getattr(sink, "answers_pending", False):
        await cast(_WritingAhead, sink).flush()


class _WritingAhead(Protocol):
    """A sink that writes a log behind the run (the runtime's RunStream)."""

    answers_pending: bool

    async def flush(self) -> None: ...


def recorded_turn(sink: object, turn: Mapping[str, Any], purpose: str) -> dict[str, Any] | None:
    """The ``turn`` event that answers a model turn in a replay (``None``: call the model).
    ``turn``: the turn's correlation (its session and ``turnId``)."""
    replay = replay_of(sink)
    if replay is None:
        return None
    turn_id = turn["turnId"]
    return replay.answer(
        "turn",
        f"turn {purpose} turnId={turn_id}",
        lambda event: event.get("turnId") == turn_id,
        turn,
    )


def recorded_batches(sink: object, turn: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The Message Batches a model turn was sent in, as its run's log holds them (a batch
    record: a ``log`` event whose ``attributes.batch`` is ``{id, customId}``, in the turn's
    session), oldest first. They are matched here, before the turn's ``turn`` event is looked
    for: the provider re-attaches to the last one instead of submitting the turn again."""
    replay = replay_of(sink)
    found: list[tuple[str, str]] = []
    if replay is None:
        return found
    lane, turn_id = lane_of(turn), turn["turnId"]
    while replay.divergence is None:
        position = replay._next(lane)
        if position is None:
            break
        event = replay.events[position]
        batch = batch_record(event)
        if batch is None or event.get("turnId") != turn_id:
            break
        replay._advance(lane)
        replay.replayed.append(event)
        found.append(batch)
    return found


def batch_record(event: dict[str, Any]) -> tuple[str, str] | None:
    """``(batch id, custom_id)`` if ``event`` is a batch record."""
    if event.get("type") != "log":
        return None
    batch = (event.get("attributes") or {}).get("batch")
    if not isinstance(batch, dict) or "id" not in batch or "customId" not in batch:
        return None
    return str(batch["id"]), str(batch["customId"])


def usage_from_wire(wire: dict[str, Any] | None) -> Usage:
    if not wire:
        return Usage()
    cost = wire.get("cost") or {}
    return Usage(
        input=int(wire.get("input", 0)),
        output=int(wire.get("output", 0)),
        cache_read=int(wire.get("cacheRead", 0)),
        cache_write=int(wire.get("cacheWrite", 0)),
        cost=Cost(
            input=float(cost.get("input", 0.0)),
            output=float(cost.get("output", 0.0)),
            cache_read=float(cost.get("cacheRead", 0.0)),
            cache_write=float(cost.get("cacheWrite", 0.0)),
        ),
    )


def response_from_turn(turn: dict[str, Any]) -> ModelResponse:
    """The model's answer as its ``turn`` event recorded it; a failed turn raises its error."""
    response = turn.get("response") or {}
    if turn.get("isError") and "output" not in response:
        failure = response.get("error")
        if failure is None:  # the turn was aborted: so is its replay
            raise asyncio.CancelledError()
        raise ModelRequestError(
            str(failure.get("message", "model error")),
            transient=bool(failure.get("transient", False)),
            code=failure.get("code"),
            retry_after=failure.get("retryAfter"),
        )
    output = response.get("output") or {}
    return ModelResponse(
        content=list(output.get("content") or []),
        usage=usage_from_wire(response.get("usage")),
        stop_reason=response.get("finishReason", "stop"),
        response_id=response.get("responseId"),
        response_model=response.get("responseModel"),
        error_message=response.get("errorMessage"),
    )
