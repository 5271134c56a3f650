"""Fixtures and factories for the event-store contract suite.

Every test that takes ``store`` runs once per backend in :data:`BACKENDS`. A new backend
(PostgreSQL) joins the suite by adding an entry to :data:`BACKENDS` (and, if it outlives its store
object, to :data:`PERSISTENT_BACKENDS`) and a branch to :func:`open_backend`.

The factories build the events a run's stream really carries: the private admission header and the
v3 envelope (``v``, ``eventIndex``, ``timestamp``, ``runId``) around each payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from flue_actors.events import RunAdmittedEvent, RunError
from flue_actors.jsonvalue import UNSET, JsonValue, Unset
from flue_actors.store import EventStore, PostgresEventStore, SqliteEventStore, StoredEvent

__all__ = [
    "BACKENDS",
    "PERSISTENT_BACKENDS",
    "POSTGRES_URL",
    "StoreOpener",
    "admission",
    "append_events",
    "drop_scratch_schemas",
    "gather_settled",
    "iso",
    "log_event",
    "make_run_id",
    "open_backend",
    "read_all",
    "run_end",
    "run_resume",
    "run_start",
    "scratch_schema",
]

BACKENDS: list[str] = ["sqlite-memory", "sqlite-file", "postgres"]
# Backends whose data outlives the store object, so a second store can reopen it.
PERSISTENT_BACKENDS: list[str] = ["sqlite-file", "postgres"]

# The PostgreSQL server the "postgres" backend uses. It must be reachable: an unreachable server
# fails those tests (CI has one), it never skips them.
POSTGRES_URL = os.environ.get("FLUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Schemas the "postgres" backend created and that are not dropped yet.
_SCRATCH_SCHEMAS: set[str] = set()

StoreOpener = Callable[[], EventStore]


def scratch_schema(tmp_path: Path) -> str:
    """The schema a test's PostgreSQL stores use: one per ``tmp_path``, so reopening finds it."""
    schema = "flue_t_" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:24]
    _SCRATCH_SCHEMAS.add(schema)
    return schema


async def drop_scratch_schemas() -> None:
    """Drop every schema :func:`scratch_schema` handed out (after its stores are closed)."""
    if not _SCRATCH_SCHEMAS:
        return
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        while _SCRATCH_SCHEMAS:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{_SCRATCH_SCHEMAS.pop()}" CASCADE')
    finally:
        await conn.close()


def open_backend(backend: str, tmp_path: Path) -> EventStore:
    """A new store on ``backend``; persistent backends keep their data under ``tmp_path`` (for
    PostgreSQL: in a schema named after it, dropped by :func:`drop_scratch_schemas`)."""
    if backend == "sqlite-memory":
        return SqliteEventStore(":memory:")
    if backend == "sqlite-file":
        return SqliteEventStore(tmp_path / "flue.db")
    if backend == "postgres":
        return PostgresEventStore(POSTGRES_URL, schema=scratch_schema(tmp_path), max_size=8)
    raise ValueError(f"Unknown store backend {backend!r}.")


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = open_backend(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
        await drop_scratch_schemas()


@pytest_asyncio.fixture(params=PERSISTENT_BACKENDS)
async def store_opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreOpener]:
    """Opens any number of stores on the same persistent data; closes them all at teardown."""
    opened: list[EventStore] = []

    def open_store() -> EventStore:
        new = open_backend(request.param, tmp_path)
        opened.append(new)
        return new

    try:
        yield open_store
    finally:
        for each in opened:
            await each.close()  # closing twice is a no-op, so tests may close early
        await drop_scratch_schemas()


# --- Factories ------------------------------------------------------------------------------------

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
