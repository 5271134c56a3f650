"""The payloads of the events a session emits, one ``TypedDict`` per event type.

:meth:`Services.emit <flue_actors._harness.session_state.Services.emit>` takes the event type
and the payload matching it, so a misspelled or missing field is a type error where the event
is built. The payloads are exactly what the log holds (the sink adds the envelope); the shapes
follow Flue's events, with the messages in them as Flue's (pi-ai's) message objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

from .._events import RunError

__all__ = [
    "AgentEndPayload",
    "CompactionDone",
    "CompactionFailed",
    "CompactionPayload",
    "CompactionStartPayload",
    "Correlation",
    "Lineage",
    "LogPayload",
    "LogWithAttributes",
    "MessagePayload",
    "ModelAsked",
    "OperationFailed",
    "OperationPayload",
    "OperationStartPayload",
    "OperationSucceeded",
    "PlainLog",
    "TaskAgent",
    "TaskCwd",
    "TaskLineage",
    "TaskPayload",
    "TaskStartPayload",
    "TextDeltaPayload",
    "ThinkingDeltaPayload",
    "ThinkingEndPayload",
    "ThinkingStartPayload",
    "TurnCorrelation",
    "TurnMessagesPayload",
    "TurnPayload",
    "TurnRequestPayload",
    "TurnStartPayload",
    "correlation_of_turn",
]


class Lineage(TypedDict, total=False):
    """A task's child session: the delegating session and the task (both, or neither)."""

    parentSession: str
    taskId: str


class Correlation(TypedDict):
    """Whose event it is: carried by every event of a session."""

    harness: str
    session: str
    conversationId: str
    # A task's child session: the delegating session and the task.
    parentSession: NotRequired[str]
    taskId: NotRequired[str]
    # Inside an operation.
    operationId: NotRequired[str]


class TurnCorrelation(Correlation):
    """The correlation of an event inside one model turn (and the tool calls it asked for)."""

    turnId: str


def correlation_of_turn(turn: TurnCorrelation) -> Correlation:
    """The correlation ``turn`` is in, without the turn: a task the model starts is correlated
    with the operation its turn belongs to."""
    # Every key of a TurnCorrelation but turnId is a Correlation's.
    return cast(Correlation, {key: value for key, value in turn.items() if key != "turnId"})


class OperationStartPayload(Correlation):
    operationKind: str


# A payload with a field that only some events of its type carry comes in variants, one per
# shape: mypy checks a payload built with ``**correlation`` only when every optional field of
# its type is either given or in a ``**`` item.


class OperationSucceeded(Correlation):
    operationKind: str
    durationMs: int
    isError: Literal[False]
    result: Any
    usage: dict[str, Any]


class OperationFailed(Correlation):
    operationKind: str
    durationMs: int
    isError: Literal[True]
    error: RunError


OperationPayload = OperationSucceeded | OperationFailed


class AgentEndPayload(Correlation):
    messages: list[Mapping[str, Any]]


class PlainLog(Correlation):
    level: Literal["info", "warn", "error"]
    message: str


class LogWithAttributes(Correlation):
    level: Literal["info", "warn", "error"]
    message: str
    attributes: dict[str, Any]


LogPayload = PlainLog | LogWithAttributes


class TurnStartPayload(TurnCorrelation):
    purpose: str


class MessagePayload(TurnCorrelation):
    """``message_start`` / ``message_end``: a message as it is shown (images redacted)."""

    message: Mapping[str, Any]


class TextDeltaPayload(TurnCorrelation):
    text: str


class ThinkingStartPayload(TurnCorrelation):
    contentIndex: int | None


class ThinkingDeltaPayload(TurnCorrelation):
    contentIndex: int | None
    delta: str


class ThinkingEndPayload(TurnCorrelation):
    contentIndex: int | None
    content: str


class ModelAsked(TypedDict):
    """What a turn asked of which model (``request``: provider, model, reasoning level)."""

    purpose: str
    request: dict[str, Any]


class TurnPayload(TurnCorrelation, ModelAsked):
    durationMs: int
    isError: bool
    response: dict[str, Any]


class TurnRequestPayload(TurnCorrelation, ModelAsked):
    """Announced to live observers only (never recorded): the request with its input."""


class TurnMessagesPayload(TurnCorrelation):
    purpose: str
    message: Mapping[str, Any]
    toolResults: list[Mapping[str, Any]]


class CompactionStartPayload(Correlation):
    reason: Literal["threshold", "overflow", "manual"]
    estimatedTokens: int


class CompactionDone(Correlation):
    messagesBefore: int
    messagesAfter: int
    durationMs: int
    isError: Literal[False]
    usage: dict[str, Any]


class CompactionFailed(Correlation):
    messagesBefore: int
    messagesAfter: int
    durationMs: int
    isError: Literal[True]
    error: RunError


CompactionPayload = CompactionDone | CompactionFailed


class TaskAgent(TypedDict, total=False):
    """The subagent a task speaks as, when it names one."""

    agent: str


class TaskCwd(TypedDict, total=False):
    """A task's working directory, when the caller gave one."""

    cwd: str


class TaskLineage(TypedDict):
    """A task's events name the child session, and the delegating one as its parent."""

    parentSession: str
    session: str
    conversationId: str


class TaskStartPayload(Correlation):
    """In the delegating session's log, with the child's ``session`` and ``conversationId``
    (and ``taskId`` and ``parentSession`` always set)."""

    prompt: str
    agent: NotRequired[str]
    cwd: NotRequired[str]


class TaskPayload(Correlation):
    """Ends what ``task_start`` began; correlated as it is."""

    agent: NotRequired[str]
    isError: bool
    result: str
    durationMs: int
