"""The events a run's stream really carries, and helpers to write and read them in a test.

The factories build the private admission header and the v3 envelope (``v``, ``eventIndex``,
``timestamp``, ``runId``) around each payload, at fixed times after 2025-01-01T00:00:00.000Z.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..._events import RunAdmittedEvent, RunError
from ..._jsonvalue import UNSET, JsonValue, Unset
from ...store import EventStore, StoredEvent

__all__ = [
    "EPOCH",
    "admission",
    "append_events",
    "gather_settled",
    "iso",
    "log_event",
    "make_run_id",
    "read_all",
    "run_end",
    "run_resume",
    "run_start",
]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def iso(ms: int = 0) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, ``ms`` after 2025-01-01T00:00:00.000Z."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_run_id(n: int) -> str:
    """A run id of Flue's shape (``run_`` + 26 Crockford characters)."""
    return f"run_{n:026d}"


def admission(
    run_id: str,
    *,
    workflow_name: str = "echo",
    started_at: str | None = None,
    run_input: JsonValue | Unset = UNSET,
    trace_carrier: dict[str, str] | None = None,
) -> RunAdmittedEvent:
    """The private admission header. ``run_input=UNSET`` leaves the ``input`` key out."""
    header: RunAdmittedEvent = {
        "type": "run_admitted",
        "runId": run_id,
        "workflowName": workflow_name,
        "startedAt": started_at if started_at is not None else iso(0),
    }
    if run_input is not UNSET:
        header["input"] = run_input
    if trace_carrier is not None:
        header["traceCarrier"] = trace_carrier
    return header


def _envelope(run_id: str, kind: str, index: int, timestamp: str | None) -> dict[str, Any]:
    return {
        "v": 3,
        "eventIndex": index,
        "timestamp": timestamp if timestamp is not None else iso(index),
        "runId": run_id,
        "type": kind,
    }


def run_start(
    run_id: str,
    *,
    index: int = 0,
    workflow_name: str = "echo",
    started_at: str | None = None,
    run_input: JsonValue | Unset = UNSET,
    timestamp: str | None = None,
) -> dict[str, Any]:
    event = _envelope(run_id, "run_start", index, timestamp)
    event["workflowName"] = workflow_name
    event["startedAt"] = started_at if started_at is not None else iso(0)
    if run_input is not UNSET:
        event["input"] = run_input
    return event


def run_resume(
    run_id: str,
    *,
    index: int,
    workflow_name: str = "echo",
    started_at: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    event = _envelope(run_id, "run_resume", index, timestamp)
    event["workflowName"] = workflow_name
    event["startedAt"] = started_at if started_at is not None else iso(0)
    return event


def run_end(
    run_id: str,
    *,
    index: int,
    duration_ms: int,
    timestamp: str | None = None,
    result: JsonValue = None,
    error: RunError | None = None,
) -> dict[str, Any]:
    """A ``run_end``: successful unless ``error`` is given (then ``result`` is null, as in Flue)."""
    event = _envelope(run_id, "run_end", index, timestamp)
    event["isError"] = error is not None
    event["result"] = None if error is not None else result
    if error is not None:
        event["error"] = error
    event["durationMs"] = duration_ms
    return event


def log_event(
    run_id: str = "run_stream", *, index: int, message: str | None = None, level: str = "info"
) -> dict[str, Any]:
    event = _envelope(run_id, "log", index, None)
    event["level"] = level
    event["message"] = message if message is not None else f"event {index}"
    return event


# --- Store helpers --------------------------------------------------------------------------------


async def append_events(
    store: EventStore, path: str, count: int, *, start: int = 0
) -> list[dict[str, Any]]:
    """Append ``count`` distinct log events in one batch; returns what was appended."""
    events = [log_event(index=start + i) for i in range(count)]
    await store.append(path, events)
    return events


async def read_all(
    store: EventStore, path: str, *, offset: str = "-1", limit: int | None = None
) -> list[StoredEvent]:
    """Every event after ``offset``, paging until the store says the reader is up to date."""
    collected: list[StoredEvent] = []
    for _ in range(10_000):
        page = await store.read(path, offset=offset, limit=limit)
        collected.extend(page.events)
        if page.up_to_date:
            return collected
        assert page.events, "a page that is not up to date must make progress"
        offset = page.next_offset
    raise AssertionError("read never became up to date")


async def gather_settled(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await ``calls`` concurrently, returning each result or the exception it raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))
