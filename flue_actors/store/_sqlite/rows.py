"""Rows of the SQLite store: run records in and out, and the checks every append makes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ..._jsonvalue import UNSET, dumps, loads
from ..._records import RunRecord, apply_event
from ...errors import FlueError, StreamClosedError, StreamConflictError, StreamMissingError

__all__ = ["project", "record_from_row", "record_row", "refusal", "tail"]


def tail(conn: sqlite3.Connection, path: str) -> tuple[int, bool]:
    length, closed = conn.execute(
        "SELECT length, closed FROM streams WHERE path = ?", (path,)
    ).fetchone()
    return int(length), bool(closed)


def refusal(conn: sqlite3.Connection, path: str, expected_seq: int | None) -> FlueError:
    """Why an append to ``path`` expecting ``expected_seq`` is refused: the stream is missing,
    closed, or at another length."""
    row = conn.execute("SELECT length, closed FROM streams WHERE path = ?", (path,)).fetchone()
    if row is None:
        return StreamMissingError(path=path)
    length, closed = row
    if closed:
        return StreamClosedError(path=path)
    # Open and present: only the expected length can have refused it.
    assert expected_seq is not None
    return StreamConflictError(path=path, expected=expected_seq, actual=length)


def project(
    conn: sqlite3.Connection,
    run_id: str,
    events: Iterable[dict[str, Any]],
    *,
    admitted: bool,
) -> None:
    """Fold lifecycle ``events`` into the run's record. ``admitted``: the stream has an
    admission header, so the record exists (admission writes both in one transaction, and
    ``rebuild_records`` refolds every one)."""
    events = list(events)
    end = next((event for event in events if event.get("type") == "run_end"), None)
    if admitted and (end is None or _project_end(conn, run_id, end)):
        # The record exists, so (apply_event) only its first run_end changes it, and only the
        # outcome's columns: set from the event alone, without reading and re-encoding the
        # whole record. This runs in the writer thread at every run's end.
        return
    status = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if status is not None:
        if status[0] == "active" and end is not None:
            _project_end(conn, run_id, end)
        return
    # No record: a stream without an admission header (an older or foreign writer), whose
    # record is recreated from its lifecycle events (see apply_event).
    record = None
    for event in events:
        record = apply_event(record, event)
    if record is not None:
        conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", record_row(record))


def _project_end(conn: sqlite3.Connection, run_id: str, end: dict[str, Any]) -> bool:
    """Set an active record's columns after ``end`` (what ``apply_event`` and ``record_row``
    make of it); ``False`` if no active record was there (ended, or missing)."""
    is_error = bool(end["isError"])
    updated = conn.execute(
        "UPDATE runs SET status = ?, ended_at = ?, is_error = ?, duration_ms = ?, result = ?, "
        "error = ? WHERE run_id = ? AND status = 'active'",
        (
            "errored" if is_error else "completed",
            end["timestamp"],
            int(is_error),
            end["durationMs"],
            None if is_error else dumps(end.get("result")),
            _optional_json(end.get("error")),
            run_id,
        ),
    ).rowcount
    return bool(updated == 1)


def _optional_json(value: Any) -> str | None:
    return None if value is UNSET or value is None else dumps(value)


def record_row(record: RunRecord) -> tuple[Any, ...]:
    return (
        record.run_id,
        record.workflow_name,
        record.status,
        record.started_at,
        None if record.input is UNSET else dumps(record.input),
        _optional_json(record.trace_carrier),
        record.ended_at,
        None if record.is_error is None else int(record.is_error),
        record.duration_ms,
        None if record.result is UNSET else dumps(record.result),
        _optional_json(record.error),
    )


def record_from_row(row: Sequence[Any]) -> RunRecord:
    (run_id, workflow, status, started, inp, carrier, ended, is_error, duration, result, error) = (
        row
    )
    return RunRecord(
        run_id=run_id,
        workflow_name=workflow,
        status=status,
        started_at=started,
        input=UNSET if inp is None else loads(inp),
        trace_carrier=None if carrier is None else loads(carrier),
        ended_at=ended,
        is_error=None if is_error is None else bool(is_error),
        duration_ms=duration,
        result=UNSET if result is None else loads(result),
        error=None if error is None else loads(error),
    )
