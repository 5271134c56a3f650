"""Run records: the projection of a run's log, and the listing over them.

A record is never written on its own: the store folds each run's admission header and lifecycle
events through :func:`apply_event`, in the same transaction as the append, and ``runs rebuild``
refolds every record from the log with the same function. So this module is the one definition of
what a run's status, result and timing are.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ._events import LIFECYCLE_EVENT_TYPES, RunAdmittedEvent, RunError
from ._jsonvalue import UNSET, JsonValue, Unset, dumps, loads

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "RunPage",
    "RunPointer",
    "RunRecord",
    "RunStatus",
    "admission_header",
    "apply_event",
    "decode_cursor",
    "encode_cursor",
    "fold",
    "normalize_limit",
]

RunStatus: TypeAlias = Literal["active", "completed", "errored"]
RUN_STATUSES: tuple[RunStatus, ...] = ("active", "completed", "errored")
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What is known of one run. ``UNSET`` input/result means absent, ``None`` means JSON null."""

    run_id: str
    workflow_name: str
    status: RunStatus
    started_at: str
    input: JsonValue | Unset = UNSET
    trace_carrier: dict[str, str] | None = None
    ended_at: str | None = None
    is_error: bool | None = None
    duration_ms: int | None = None
    result: JsonValue | Unset = UNSET
    error: RunError | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status != "active"

    def to_wire(self) -> dict[str, Any]:
        """Flue's ``RunRecord`` JSON: the pointer's fields plus input, trace context, result and
        error; camelCase keys, absent fields omitted."""
        wire = self.pointer().to_wire()
        if self.input is not UNSET:
            wire["input"] = self.input
        if self.trace_carrier is not None:
            wire["traceCarrier"] = self.trace_carrier
        if self.result is not UNSET:
            wire["result"] = self.result
        if self.error is not None:
            wire["error"] = self.error
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RunRecord:
        pointer = RunPointer.from_wire(wire)
        return cls(
            run_id=pointer.run_id,
            workflow_name=pointer.workflow_name,
            status=pointer.status,
            started_at=pointer.started_at,
            input=wire.get("input", UNSET),
            trace_carrier=wire.get("traceCarrier"),
            ended_at=pointer.ended_at,
            is_error=pointer.is_error,
            duration_ms=pointer.duration_ms,
            result=wire.get("result", UNSET),
            error=wire.get("error"),
        )

    def pointer(self) -> RunPointer:
        return RunPointer(
            run_id=self.run_id,
            workflow_name=self.workflow_name,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_ms=self.duration_ms,
            is_error=self.is_error,
        )


@dataclass(frozen=True, slots=True)
class RunPointer:
    """A run as listings show it: never input, result, error or trace context."""

    run_id: str
    workflow_name: str
    status: RunStatus
    started_at: str
    ended_at: str | None = None
    duration_ms: int | None = None
    is_error: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "runId": self.run_id,
            "workflowName": self.workflow_name,
            "status": self.status,
            "startedAt": self.started_at,
        }
        if self.ended_at is not None:
            wire["endedAt"] = self.ended_at
        if self.duration_ms is not None:
            wire["durationMs"] = self.duration_ms
        if self.is_error is not None:
            wire["isError"] = self.is_error
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RunPointer:
        return cls(
            run_id=wire["runId"],
            workflow_name=wire["workflowName"],
            status=wire["status"],
            started_at=wire["startedAt"],
            ended_at=wire.get("endedAt"),
            duration_ms=wire.get("durationMs"),
            is_error=wire.get("isError"),
        )


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunPointer]
    next_cursor: str | None = None

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RunPage:
        runs = [RunPointer.from_wire(run) for run in wire["runs"]]
        return cls(runs=runs, next_cursor=wire.get("nextCursor"))

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"runs": [run.to_wire() for run in self.runs]}
        if self.next_cursor is not None:
            wire["nextCursor"] = self.next_cursor
        return wire


# --- The fold -----------------------------------------------------------------------------------


def record_from_admission(header: RunAdmittedEvent) -> RunRecord:
    return RunRecord(
        run_id=header["runId"],
        workflow_name=header["workflowName"],
        status="active",
        started_at=header["startedAt"],
        input=header.get("input", UNSET),
        trace_carrier=header.get("traceCarrier"),
    )


def admission_header(record: RunRecord) -> RunAdmittedEvent:
    """The admission header a record was folded from (the header holds nothing else)."""
    header: RunAdmittedEvent = {
        "type": "run_admitted",
        "runId": record.run_id,
        "workflowName": record.workflow_name,
        "startedAt": record.started_at,
    }
    if record.input is not UNSET:
        header["input"] = record.input
    if record.trace_carrier is not None:
        header["traceCarrier"] = record.trace_carrier
    return header


def apply_event(record: RunRecord | None, event: Mapping[str, Any]) -> RunRecord | None:
    """The record after ``event``. Creation is first-writer-wins; the first ``run_end`` wins."""
    kind = event.get("type")
    if kind not in LIFECYCLE_EVENT_TYPES:
        return record
    if record is None:
        # A stream whose admission header is missing (written by an older or foreign writer):
        # the record is recreated from what the lifecycle events say, as Flue's recovery does.
        record = RunRecord(
            run_id=event["runId"],
            workflow_name=event.get("workflowName", ""),
            status="active",
            started_at=event.get("startedAt", event["timestamp"]),
            input=event.get("input", UNSET) if kind == "run_start" else UNSET,
        )
    if kind != "run_end" or record.is_terminal:
        return record
    is_error = bool(event["isError"])
    # Built directly rather than with dataclasses.replace (a field walk): every run's end is
    # folded here by the actor that wrote it, for its waiters.
    return RunRecord(
        run_id=record.run_id,
        workflow_name=record.workflow_name,
        status="errored" if is_error else "completed",
        started_at=record.started_at,
        input=record.input,
        trace_carrier=record.trace_carrier,
        ended_at=event["timestamp"],
        is_error=is_error,
        duration_ms=event["durationMs"],
        result=UNSET if is_error else event.get("result"),
        error=event.get("error"),
    )


def fold(header: RunAdmittedEvent | None, events: Iterable[Mapping[str, Any]]) -> RunRecord | None:
    """The record of a run, from its admission header and its events alone."""
    record = record_from_admission(header) if header is not None else None
    for event in events:
        record = apply_event(record, event)
    return record


# --- Listing ------------------------------------------------------------------------------------


def normalize_limit(limit: int | None) -> int:
    """Flue's rule: missing, zero or negative means 100; never more than 1000."""
    if limit is None or limit <= 0:
        return DEFAULT_LIST_LIMIT
    return min(limit, MAX_LIST_LIMIT)


def encode_cursor(pointer: RunPointer) -> str:
    """base64url without padding of UTF-8 JSON ``{"s": startedAt, "r": runId}``."""
    raw = dumps({"s": pointer.started_at, "r": pointer.run_id}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    """The ``(startedAt, runId)`` a cursor names, or ``None`` if it cannot be decoded."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        # RecursionError: a hostile cursor of deeply nested JSON must be ignored like any other.
        return None
    if not isinstance(data, dict):
        return None
    started_at, run_id = data.get("s"), data.get("r")
    if not isinstance(started_at, str) or not isinstance(run_id, str):
        return None
    try:
        (started_at + run_id).encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate: no run has it, and no store could be asked for it
    return started_at, run_id
