"""Run events: the v3 envelope and the payloads that make up a run's stream.

Events are plain JSON objects (``dict``), exactly as they appear on the wire, because the log
stores them and the gateway serves them without re-shaping. The ``TypedDict`` classes below give
the lifecycle events static types; the harness builds the rest with the same envelope.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict

from ._jsonvalue import JsonObject, JsonValue
from .errors import ProductEventVersionError

__all__ = [
    "BUFFERED_EVENT_TYPES",
    "EVENT_VERSION",
    "LIFECYCLE_EVENT_TYPES",
    "EventType",
    "LogEvent",
    "RunAdmittedEvent",
    "RunEndEvent",
    "RunError",
    "RunResumeEvent",
    "RunStartEvent",
    "check_event_version",
    "error_payload",
]

EVENT_VERSION: Final = 3

EventType = Literal[
    "run_start",
    "run_resume",
    "run_end",
    "agent_start",
    "agent_end",
    "turn_start",
    "turn",
    "turn_messages",
    "message_start",
    "message_end",
    "text_delta",
    "thinking_start",
    "thinking_delta",
    "thinking_end",
    "tool_start",
    "tool",
    "task_start",
    "task",
    "compaction_start",
    "compaction",
    "operation_start",
    "operation",
    "log",
    "idle",
]

# Streaming detail is held back and written together with the next event that is not streaming
# detail (or after 3 s), as Flue does: it is best-effort and would otherwise dominate the log.
BUFFERED_EVENT_TYPES: Final = frozenset(
    {"text_delta", "thinking_start", "thinking_delta", "thinking_end"}
)
# The events that change a run record. Everything else leaves the projection untouched.
LIFECYCLE_EVENT_TYPES: Final = frozenset({"run_start", "run_resume", "run_end"})


class RunError(TypedDict):
    """How an error is kept in ``run_end``, ``operation`` and run records.

    Flue keeps ``{name, message}``; flue_actors adds the ``type`` of typed errors (and their
    ``meta``) so a reader can tell an input error from a model failure without parsing text.
    """

    name: str
    message: str
    type: NotRequired[str]
    meta: NotRequired[JsonObject]


class _Envelope(TypedDict):
    v: int
    eventIndex: int
    timestamp: str
    runId: str


class RunAdmittedEvent(TypedDict):
    """Private: the header of a run's stream, written at admission. Never served on ``/runs``."""

    type: Literal["run_admitted"]
    runId: str
    workflowName: str
    startedAt: str
    input: NotRequired[JsonValue]
    traceCarrier: NotRequired[dict[str, str]]
    # Claimed with the run's admission: a repeated key finds this run (store/idempotency.py).
    idempotencyKey: NotRequired[str]
    # Its own model batches (``runtime.batch(..., model_batches=)``: ``ModelBatches.to_wire``),
    # so that every life of the run sends its turns the same way.
    modelBatches: NotRequired[dict[str, JsonValue]]


class RunStartEvent(_Envelope):
    type: Literal["run_start"]
    workflowName: str
    startedAt: str
    input: NotRequired[JsonValue]


class RunResumeEvent(_Envelope):
    type: Literal["run_resume"]
    workflowName: str
    startedAt: str


class RunEndEvent(_Envelope):
    type: Literal["run_end"]
    result: JsonValue
    isError: bool
    error: NotRequired[RunError]
    durationMs: int


class LogEvent(_Envelope):
    type: Literal["log"]
    level: Literal["info", "warn", "error"]
    message: str
    attributes: NotRequired[JsonObject]


def error_payload(error: BaseException) -> RunError:
    """The ``{name, message, type?, meta?}`` form of an exception for events and records."""
    from .errors import FlueError  # local: errors imports nothing from here, keep it that way

    payload: RunError = {"name": type(error).__name__, "message": str(error)}
    if isinstance(error, FlueError):
        payload["message"] = error.message
        payload["type"] = error.type
        if error.meta is not None:
            payload["meta"] = error.meta
    return payload


def check_event_version(event: dict[str, Any]) -> None:
    """Readers refuse events of any version but 3 (``product_event_version_unsupported``)."""
    version = event.get("v")
    if version != EVENT_VERSION:
        raise ProductEventVersionError(stored_version=version)
