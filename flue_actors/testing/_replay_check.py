"""Replay checks: does the code still make the operations a run's log holds?

``check_replay`` is Temporal's Replayer: the workflow runs again against the whole log of a
finished run, every operation answered from it, and any difference (another operation at some
position, one more or one fewer, another result) fails with a diff of the two operation lists.

``check_interrupted_replays`` is Restate's always-replay: the run is cut off after each of its
operations, as a crash would leave it, and resumed from that prefix as a new owner would; the
part after the cut is answered live by a model that gives the log's answers in order (tools and
commands run again). Each resumed run must end with the same events and result.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

from .._events import RunAdmittedEvent
from .._harness.replay import describe, response_from_turn
from .._runtime.run_actor import RunActor, read_run_events
from .._runtime.services import RunServices
from ..models import ModelRegistry, ModelRequest, ModelResponse, RetryPolicy, StreamListener
from ..store import SqliteEventStore, run_stream

__all__ = ["ReplayMismatchError", "check_interrupted_replays", "check_replay"]

# Streaming detail: best-effort, and not produced again by a replay.
_DETAIL: Final = frozenset({"text_delta", "thinking_start", "thinking_delta", "thinking_end"})
_TIMES: Final = frozenset({"timestamp", "durationMs"})
_DIFF_LINES: Final = 60


class ReplayMismatchError(AssertionError):
    """The code no longer produces the operations its run's log holds."""


def _operations(events: list[dict[str, Any]]) -> list[str]:
    return [describe(e) for e in events if e["type"] not in _DETAIL | {"run_resume", "run_end"}]


def _diff(log: list[str], code: list[str]) -> str:
    lines = list(difflib.unified_diff(log, code, "the run's log", "the code now", lineterm=""))
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... ({len(lines) - _DIFF_LINES} more lines)"]
    return "\n".join(lines)


async def _scratch(header: RunAdmittedEvent, prefix: list[dict[str, Any]]) -> SqliteEventStore:
    store = SqliteEventStore(":memory:")
    await store.admit_run(header)
    if prefix:
        await store.append(run_stream(header["runId"]), prefix, expected_seq=0)
    return store


async def check_replay(
    header: RunAdmittedEvent, events: list[dict[str, Any]], services: RunServices
) -> None:
    """Run the workflow again against ``events`` (a finished run's log), strictly: raise
    :class:`ReplayMismatchError` unless it makes exactly the logged operations and ends alike."""
    if not events or events[-1]["type"] != "run_end":
        raise ValueError(f"run {header['runId']} has not ended: only a finished run replays")
    recorded = events[:-1]
    store = await _scratch(header, recorded)
    try:
        replay_services = _with_store(services, store)
        actor = RunActor(
            header, replay_services, recorded=recorded, stream_length=len(recorded), strict=True
        )
        end = await actor.run()
    finally:
        await store.close()
    replay = actor.replay
    assert replay is not None
    if replay.divergence is not None:
        code = [*_operations(replay.replayed), replay.divergence.requested]
        raise ReplayMismatchError(
            f"run {header['runId']} no longer replays: {replay.divergence.message}\n"
            + _diff(_operations(recorded), code)
        )
    original = events[-1]
    for field in ("isError", "result", "error"):
        if _strip(end.get(field)) != _strip(original.get(field)):
            raise ReplayMismatchError(
                f"run {header['runId']} replays every operation but ends otherwise: its "
                f"{field} was {original.get(field)!r}, the code now gives {end.get(field)!r}"
            )


class _LoggedModel:
    """Answers model calls with the log's ``turn`` events, in order: the world as it was."""

    name = "fake"
    api = "fake"

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self._turns = list(turns)

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        if not self._turns:
            raise ReplayMismatchError("the resumed run asked the model once more than the run did")
        return response_from_turn(self._turns.pop(0))


async def check_interrupted_replays(
    header: RunAdmittedEvent, events: list[dict[str, Any]], services: RunServices
) -> int:
    """Cut the finished run's log after each operation and resume it from there; raise
    :class:`ReplayMismatchError` at the first cut whose resumed run ends otherwise. Returns
    how many cuts were checked."""
    ends = [i + 1 for i, e in enumerate(events[:-1]) if e["type"] in ("turn", "tool", "idle")]
    expected = _comparable(events)
    for cut in ends:
        prefix = events[:cut]
        answered = sum(1 for e in prefix if e["type"] == "turn")
        later = [e for e in events if e["type"] == "turn"][answered:]
        store = await _scratch(header, prefix)
        try:
            models = ModelRegistry(
                override=_LoggedModel(later),
                retry=RetryPolicy(sleep=services.models.retry.sleep, jitter=lambda: 0.0),
            )
            resumed_services = _with_store(services, store, models=models)
            actor = RunActor(header, resumed_services, recorded=prefix, stream_length=cut)
            await actor.run()
            resumed, _ = await read_run_events(store, header["runId"])
        finally:
            await store.close()
        got = _comparable(resumed)
        if got != expected:
            raise ReplayMismatchError(
                f"run {header['runId']} interrupted after event {cut - 1} "
                f"({describe(events[cut - 1])}) and resumed ends otherwise:\n"
                + _diff([_line(e) for e in expected], [_line(e) for e in got])
            )
    return len(ends)


def _with_store(
    services: RunServices, store: SqliteEventStore, *, models: ModelRegistry | None = None
) -> RunServices:
    return RunServices(
        store=store,
        workflows=services.workflows,
        models=models or services.models,
        clock=services.clock,
        ids=services.ids,
        env=services.env,
    )


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = [e for e in events if e["type"] not in _DETAIL and e["type"] != "run_resume"]
    return [_strip({k: v for k, v in e.items() if k != "eventIndex"}) for e in kept]


def _line(event: Mapping[str, Any]) -> str:
    from .._jsonvalue import dumps

    text = dumps(dict(event))
    return text if len(text) <= 300 else text[:297] + "..."
