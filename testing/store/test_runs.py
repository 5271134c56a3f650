"""Run records beyond the store contract: the fold itself, SQLite's rebuild and schema checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flue_actors._events import RunAdmittedEvent, RunError
from flue_actors._jsonvalue import UNSET
from flue_actors._records import apply_event, fold
from flue_actors.errors import StoreSchemaVersionError
from flue_actors.store import EventStore, SqliteEventStore, run_stream
from flue_actors.store._sqlite import SCHEMA_VERSION

from .conftest import (
    admission,
    gather_settled,
    iso,
    log_event,
    make_run_id,
    run_end,
    run_start,
)

CARRIER = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
BOOM: RunError = {"name": "Error", "message": "boom"}


async def _admit(store: EventStore, *headers: RunAdmittedEvent) -> None:
    outcomes = await gather_settled([store.admit_run(h) for h in headers])
    assert outcomes == [True] * len(headers)


# --- Listing --------------------------------------------------------------------------------------


# --- Rebuild and persistence ----------------------------------------------------------------------


async def _varied_runs(store: EventStore) -> list[str]:
    """Runs in every state the projection knows, plus streams that are not runs."""
    ids = [make_run_id(n) for n in range(1, 8)]
    a, b, c, d, e, f, g = ids
    await _admit(
        store,
        admission(a, started_at=iso(1)),  # active, input absent
        admission(b, started_at=iso(2), run_input=None, trace_carrier=CARRIER),  # active, null
        admission(c, workflow_name="w2", started_at=iso(3), run_input={"x": [1, 2]}),
        admission(d, started_at=iso(4), run_input="d"),
        admission(e, started_at=iso(5)),
        admission(f, started_at=iso(6)),
    )
    await store.append(run_stream(a), [run_start(a), log_event(a, index=1)])
    await store.append(
        run_stream(c),
        [
            run_start(c, run_input={"x": [1, 2]}),
            run_end(c, index=1, duration_ms=30, result={"ok": 1}),
        ],
        close=True,
    )
    await store.append(
        run_stream(d), [run_start(d), run_end(d, index=1, duration_ms=40, result=None)], close=True
    )
    await store.append(run_stream(e), [run_end(e, index=0, duration_ms=50, error=BOOM)], close=True)
    # Two run_ends on an open stream: the first one must still win after a rebuild.
    await store.append(run_stream(f), [run_end(f, index=0, duration_ms=60, result="first")])
    await store.append(run_stream(f), [run_end(f, index=1, duration_ms=61, error=BOOM)])
    # A run recovered from its lifecycle events alone (no admission header).
    await store.create_stream(run_stream(g))
    await store.append(run_stream(g), [run_start(g, workflow_name="w3", started_at=iso(7))])
    # Streams that hold no run.
    await store.create_stream(run_stream("run_logs_only"))
    await store.append(run_stream("run_logs_only"), [log_event(index=0)])
    await store.create_stream("agents/echo/x")
    await store.append("agents/echo/x", [run_start("run_agent")])
    return ids


# --- Concurrency ----------------------------------------------------------------------------------


def test_first_run_end_wins_in_the_fold() -> None:
    run_id = make_run_id(1)
    first = run_end(run_id, index=1, duration_ms=10, timestamp=iso(10), result="first")
    second = run_end(run_id, index=2, duration_ms=20, timestamp=iso(20), error=BOOM)
    ended = apply_event(fold(admission(run_id), []), first)
    assert ended is not None
    assert apply_event(ended, second) == ended
    assert apply_event(ended, run_start(run_id, run_input="later")) == ended
    assert fold(admission(run_id), [first, second]) == ended
    assert ended.status == "completed"
    assert ended.result == "first"
    errored = fold(admission(run_id), [second, first])
    assert errored is not None
    assert (errored.status, errored.error, errored.result) == ("errored", BOOM, UNSET)


async def test_rebuild_records_replaces_tampered_records(tmp_path: Path) -> None:
    """SQLite-specific: corrupt the projection behind the store's back, then refold it."""
    location = tmp_path / "tamper.db"
    store = SqliteEventStore(location)
    try:
        ids = await _varied_runs(store)
        before = {run_id: await store.get_run(run_id) for run_id in ids}
        conn = sqlite3.connect(location)
        try:
            with conn:
                conn.execute(
                    "UPDATE runs SET status = 'completed', result = '1' WHERE run_id = ?", (ids[0],)
                )
                conn.execute("DELETE FROM runs WHERE run_id = ?", (ids[2],))
                conn.execute(
                    "INSERT INTO runs (run_id, workflow_name, status, started_at) "
                    "VALUES ('run_ghost', 'ghost', 'active', '2030-01-01T00:00:00.000Z')"
                )
        finally:
            conn.close()
        assert await store.get_run(ids[2]) is None
        assert await store.get_run("run_ghost") is not None
        assert await store.rebuild_records() == len(ids)
        assert {run_id: await store.get_run(run_id) for run_id in ids} == before
        assert await store.get_run("run_ghost") is None
    finally:
        await store.close()


@pytest.mark.parametrize("found", [SCHEMA_VERSION + 1, 0])
async def test_other_schema_version_is_refused(tmp_path: Path, found: int) -> None:
    location = tmp_path / "flue.db"
    store = SqliteEventStore(location)
    await store.admit_run(admission(make_run_id(1)))
    await store.close()
    conn = sqlite3.connect(location)
    try:
        with conn:
            conn.execute(
                "UPDATE flue_meta SET value = ? WHERE key = 'schema_version'", (str(found),)
            )
    finally:
        conn.close()
    with pytest.raises(StoreSchemaVersionError) as caught:
        SqliteEventStore(location)
    assert caught.value.meta == {"found": found, "supported": SCHEMA_VERSION}
    assert caught.value.type == "persisted_schema_version_unsupported"
    # Nothing was migrated: the file still says what it said.
    conn = sqlite3.connect(location)
    try:
        row = conn.execute("SELECT value FROM flue_meta WHERE key = 'schema_version'").fetchone()
    finally:
        conn.close()
    assert row == (str(found),)
