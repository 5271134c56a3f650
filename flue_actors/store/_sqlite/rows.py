"""Rows of the SQLite store: run records in and out, and the checks every append makes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ..._jsonvalue import UNSET, dumps, loads
from ..._records import RunRecord, apply_event
from ...errors import StreamClosedError, StreamConflictError, StreamMissingError

__all__ = ["project", "record_from_row", "record_row", "tail", "writable_length"]


def tail(conn: sqlite3.Connection, path: str) -> tuple[int, bool]:
    length, closed = conn.execute(
        "SELECT length, closed FROM streams WHERE path = ?", (path,)
    ).fetchone()
    return int(length), bool(closed)


def writable_length(conn: sqlite3.Connection, path: str, expected_seq: int | None) -> int:
    row = conn.execute("SELECT length, closed FROM streams WHERE path = ?", (path,)).fetchone()
    if row is None:
        raise StreamMissingError(path=path)
    length, closed = row
    if closed:
        raise StreamClosedError(path=path)
    if expected_seq is not None and expected_seq != length:
        raise StreamConflictError(path=path, expected=expected_seq, actual=length)
    return int(length)


def project(conn: sqlite3.Connection, run_id: str, events: Iterable[dict[str, Any]]) -> None:
    events = list(events)
    status = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if status is not None:
        # The record exists, so (apply_event) only its first run_end changes it, and only the
        # outcome's columns: set from the event alone, without reading and re-encoding the
        # whole record. This runs in the writer thread twice per run.
        if status[0] != "active":
            return
        end = next((event for event in events if event.get("type") == "run_end"), None)
        if end is not None:
            _project_end(conn, run_id, end)
        return
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    before = record_from_row(row) if row is not None else None
    after = before
    for event in events:
        after = apply_event(after, event)
    if after is None or after == before:
        return
    row = record_row(after)
    if before is None:
        conn.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
        return
    # Only the columns that changed (at run_end: status and the outcome): a replaced row would
    # rewrite every index of the table, an update only those over the columns it sets.
    old = record_row(before)
    changed = [i for i in range(1, len(_RUN_COLUMNS)) if row[i] != old[i]]
    if changed:
        assignments = ", ".join(f"{_RUN_COLUMNS[i]} = ?" for i in changed)
        conn.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = ?",
            (*(row[i] for i in changed), row[0]),
        )


def _project_end(conn: sqlite3.Connection, run_id: str, end: dict[str, Any]) -> None:
    """An active record's columns after ``end``: what ``apply_event`` and ``record_row`` make
    of it."""
    is_error = bool(end["isError"])
    conn.execute(
        "UPDATE runs SET status = ?, ended_at = ?, is_error = ?, duration_ms = ?, result = ?, "
        "error = ? WHERE run_id = ?",
        (
            "errored" if is_error else "completed",
            end["timestamp"],
            int(is_error),
            end["durationMs"],
            None if is_error else dumps(end.get("result")),
            _optional_json(end.get("error")),
            run_id,
        ),
    )


# The columns of ``runs``, in the order of ``record_row``.
_RUN_COLUMNS: Final = (
    "run_id", "workflow_name", "status", "started_at", "input", "trace_carrier", "ended_at",
    "is_error", "duration_ms", "result", "error",
)  # fmt: skip


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
