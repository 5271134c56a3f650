"""The client's protocol logic, free of I/O, shared by the sync and async clients: building
requests, reading responses and errors, following a run's stream, parsing SSE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import httpx

from .._jsonvalue import UNSET, JsonValue, Unset, dumps, loads

__all__ = [
    "ExecutionFailure",
    "FlueApiError",
    "FlueExecutionError",
    "Invocation",
    "LiveMode",
    "RunSettlement",
    "SseParser",
    "StreamFollower",
    "WorkflowRun",
    "invocation_from",
    "raise_for_error",
]

LiveMode: TypeAlias = bool | Literal["long-poll", "sse"]


class FlueApiError(Exception):
    """A gateway answered with an error. ``type`` is the envelope's wire type
    (``run_not_found``, ``action_input_validation``, ...); ``status`` the HTTP status."""

    def __init__(
        self,
        *,
        status: int,
        type: str,
        message: str,
        details: str = "",
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.details = details
        self.meta = meta


ExecutionFailure: TypeAlias = Literal["failed", "aborted", "terminal_event_missing"]


class FlueExecutionError(Exception):
    """A run the client waited for did not complete (``@flue/sdk``'s ``FlueExecutionError``).

    ``target`` is ``"workflow_run"``, ``target_id`` the run id; ``failure`` says how it ended:
    ``"failed"`` (its ``run_end`` is an error), ``"aborted"`` (it was cancelled: error type
    ``run_cancelled``), or ``"terminal_event_missing"`` (its stream closed with no ``run_end``
    and its record is not terminal). ``error`` is the run's ``{name, message, type?, meta?}``.
    """

    def __init__(
        self,
        *,
        target_id: str,
        failure: ExecutionFailure,
        error: Any = None,
        target: Literal["workflow_run"] = "workflow_run",
    ) -> None:
        self.target = target
        self.target_id = target_id
        self.failure = failure
        self.error = error
        super().__init__(_execution_message(target_id, failure, error))


def _execution_message(target_id: str, failure: ExecutionFailure, error: Any) -> str:
    if failure == "terminal_event_missing":
        return f"Workflow run {target_id} ended without a terminal event"
    message = error if isinstance(error, str) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message = error["message"]
    verb = "was aborted" if failure == "aborted" else "failed"
    return f"Workflow run {target_id} {verb}" + (f": {message}" if message else "")


@dataclass(frozen=True)
class WorkflowRun:
    """What ``workflows.run`` returns: the run id and its result (JSON, ``None`` for none)."""

    run_id: str
    result: JsonValue


class RunSettlement:
    """How ``workflows.run`` decides a run's outcome, free of I/O: from the run's own
    ``run_end`` as it streams past, else (a stream that closed without one) from its record."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.outcome: WorkflowRun | None = None

    def observe(self, event: dict[str, Any]) -> bool:
        """Look at one streamed event; True once it settled the run (raising if it failed)."""
        if event.get("type") != "run_end" or event.get("runId") != self.run_id:
            return False
        if event.get("isError"):
            raise self._failure(event.get("error"))
        self.outcome = WorkflowRun(self.run_id, event.get("result"))
        return True

    def from_record(self, wire: dict[str, Any]) -> WorkflowRun:
        """The outcome read from the run's record (``GET /runs/{id}?meta``)."""
        status = wire.get("status")
        if status == "completed":
            return WorkflowRun(self.run_id, wire.get("result"))
        if status == "errored":
            raise self._failure(wire.get("error"))
        raise FlueExecutionError(target_id=self.run_id, failure="terminal_event_missing")

    def _failure(self, error: Any) -> FlueExecutionError:
        cancelled = isinstance(error, dict) and error.get("type") == "run_cancelled"
        return FlueExecutionError(
            target_id=self.run_id, failure="aborted" if cancelled else "failed", error=error
        )


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = loads(response.content)
        error = body["error"]
        raise FlueApiError(
            status=response.status_code,
            type=str(error["type"]),
            message=str(error["message"]),
            details=str(error.get("details", "")),
            meta=error.get("meta"),
        )
    except (ValueError, KeyError, TypeError):
        raise FlueApiError(
            status=response.status_code,
            type="http_error",
            message=response.text[:500] or response.reason_phrase,
        ) from None


@dataclass(frozen=True)
class Invocation:
    """What invoking a workflow returned: the run id, and the result with ``wait="result"``."""

    run_id: str
    result: JsonValue | Unset = UNSET


def invocation_request(
    input: Any, wait: Literal["result"] | None, idempotency_key: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {"params": {"wait": wait} if wait else {}}
    headers: dict[str, str] = {}
    if input is not UNSET:
        request["content"] = dumps(input)
        headers["content-type"] = "application/json"
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    if headers:
        request["headers"] = headers
    return request


def invocation_from(response: httpx.Response) -> Invocation:
    raise_for_error(response)
    body = loads(response.content)
    return Invocation(run_id=body["runId"], result=body.get("result", UNSET))


@dataclass
class SseParser:
    """Feed it lines of a ``text/event-stream``; it hands back ``(event, data)`` frames."""

    _event: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str] | None:
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            frame = (self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class StreamFollower:
    """Where a reader of a run's stream stands, and what to ask next.

    ``offset`` is the checkpoint: the offset of the last fully delivered batch, so a reader that
    resumes from it after a dropped connection sees no gap (and possibly a repeat of one batch:
    at-least-once, as Flue's SDK promises).
    """

    def __init__(self, *, offset: str = "-1", tail: int | None = None, live: LiveMode = True):
        self.offset = offset
        self._tail = tail
        self.live: Literal["long-poll", "sse"] | None = (
            None if live is False else "long-poll" if live is True else live
        )
        self.cursor: str | None = None
        self.done = False
        self._sse = SseParser()
        self._pending: list[dict[str, Any]] = []

    def start_sse(self) -> None:
        """A new SSE connection: anything half-received on the last one is dropped."""
        self._sse = SseParser()
        self._pending = []
        self._tail = None

    def params(self) -> dict[str, str]:
        params = {"offset": self.offset}
        if self._tail is not None and self.offset == "-1":
            params["tail"] = str(self._tail)
        if self.live is not None:
            params["live"] = self.live
        if self.cursor is not None:
            params["cursor"] = self.cursor
        return params

    def absorb(self, response: httpx.Response) -> tuple[list[dict[str, Any]], str]:
        """The events of a JSON (catch-up or long-poll) response and the offset after them."""
        raise_for_error(response)
        headers = response.headers
        next_offset = headers.get("stream-next-offset", self.offset)
        self.cursor = headers.get("stream-cursor", self.cursor)
        self._tail = None
        closed = headers.get("stream-closed") == "true"
        up_to_date = headers.get("stream-up-to-date") == "true"
        events: list[dict[str, Any]] = (
            [] if response.status_code == 204 else loads(response.content)
        )
        if closed or (self.live is None and (up_to_date or next_offset == self.offset)):
            self.done = True
        return events, next_offset

    def feed_sse(self, line: str) -> tuple[list[dict[str, Any]], str] | None:
        """Feed one SSE line; a control frame completes a batch: the events of the data frames
        before it, and the offset after them."""
        frame = self._sse.feed(line)
        if frame is None:
            return None
        kind, data = frame
        if kind == "data":
            self._pending.extend(loads(data))
            return None
        if kind != "control":
            return None
        control = loads(data)
        self.cursor = control.get("streamCursor", self.cursor)
        if control.get("streamClosed"):
            self.done = True
        batch, self._pending = self._pending, []
        return batch, control["streamNextOffset"]
