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
from collections.abc import Callable
from typing import Any, Final

from ..errors import ModelRequestError, ReplayDivergenceError
from ..models import Cost, ModelResponse, Usage

__all__ = [
    "Replay",
    "describe",
    "recorded_batches",
    "recorded_turn",
    "replay_of",
    "response_from_turn",
    "usage_from_wire",
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


class Replay:
    """The recorded events of one run and the position the replay has reached in them."""

    def __init__(self, events: list[dict[str, Any]], *, strict: bool = False) -> None:
        self._events = events
        self.position = 0
        # The kit's replay check: an operation the log lacks is a divergence, not a go-live.
        self.strict = strict
        self.live = not events and not strict
        self.divergence: ReplayDivergenceError | None = None
        self.on_divergence: Callable[[ReplayDivergenceError], None] | None = None
        self.replayed: list[dict[str, Any]] = []  # the events matched, in order

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._events

    def _skip(self, type: str) -> None:
        events, position = self._events, self.position
        while position < len(events) and events[position]["type"] in _PASSED_OVER:
            if events[position]["type"] == type:
                break
            position += 1
        self.position = position

    def _exhausted(self, requested: str) -> None:
        if self.strict:
            self._diverge(self.position, "nothing more (the run ended there)", requested)
        else:
            self.live = True

    def _diverge(self, position: int, recorded: str, requested: str) -> None:
        if self.divergence is None:
            at = (
                self._events[position].get("eventIndex", position)
                if position < len(self._events)
                else (self._events[-1].get("eventIndex", -1) + 1 if self._events else 0)
            )
            self.divergence = ReplayDivergenceError(
                position=int(at), recorded=recorded, requested=requested
            )
            if self.on_divergence is not None:
                self.on_divergence(self.divergence)

    def take(self, type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded event this emission repeats; ``None`` when the replay has gone live
        (emit it for real) or has diverged (drop it)."""
        if self.divergence is not None:
            return None
        self._skip(type)
        if self.position >= len(self._events):
            self._exhausted(describe({"type": type, **payload}))
            return None
        recorded = self._events[self.position]
        if _identity(recorded["type"], recorded) != _identity(type, payload):
            self._diverge(self.position, describe(recorded), describe({"type": type, **payload}))
            return None
        self.position += 1
        self.replayed.append(recorded)
        return recorded

    def answer(
        self, type: str, requested: str, matches: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """The recorded outcome of the operation the code asks for (the next ``type`` event,
        which the harness then emits and ``take`` consumes); ``None`` when the log lacks it
        (perform it live). Anything else recorded there is a divergence, raised."""
        if self.live:
            return None
        if self.divergence is not None:
            raise self.divergence
        self._skip(type)
        if self.position >= len(self._events):
            self._exhausted(requested)
            if self.divergence is not None:
                raise self.divergence
            return None
        recorded = self._events[self.position]
        if recorded["type"] != type or not matches(recorded):
            self._diverge(self.position, describe(recorded), requested)
            assert self.divergence is not None
            raise self.divergence
        return recorded

    def finish(self) -> None:
        """The workflow returned: anything the log holds beyond is an operation the code no
        longer makes."""
        if self.live or self.divergence is not None:
            return
        self._skip("")
        if self.position < len(self._events):
            recorded = self._events[self.position]
            self._diverge(self.position, describe(recorded), "the end of the run")


def replay_of(sink: object) -> Replay | None:
    """The replay a harness's events go through, if its run is being replayed now."""
    replay = getattr(sink, "replay", None)
    if isinstance(replay, Replay) and not replay.live:
        return replay
    return None


def recorded_turn(sink: object, turn_id: str, purpose: str) -> dict[str, Any] | None:
    """The ``turn`` event that answers a model turn in a replay (``None``: call the model)."""
    replay = replay_of(sink)
    if replay is None:
        return None
    return replay.answer(
        "turn",
        f"turn {purpose} turnId={turn_id}",
        lambda event: event.get("turnId") == turn_id,
    )


def recorded_batches(sink: object, turn_id: str) -> list[tuple[str, str]]:
    """The Message Batches a model turn was sent in, as its run's log holds them (a batch
    record: a ``log`` event whose ``attributes.batch`` is ``{id, customId}``), oldest first.
    They are matched here, before the turn's ``turn`` event is looked for: the provider
    re-attaches to the last one instead of submitting the turn again."""
    replay = replay_of(sink)
    found: list[tuple[str, str]] = []
    while replay is not None and replay.divergence is None:
        replay._skip("log")
        if replay.position >= len(replay.events):
            break
        event = replay.events[replay.position]
        batch = batch_record(event)
        if batch is None or event.get("turnId") != turn_id:
            break
        replay.position += 1
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
