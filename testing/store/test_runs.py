"""Run records beyond the store contract: the fold itself, SQLite's rebuild and schema checks."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from flue_actors._events import RunError
from flue_actors._jsonvalue import UNSET
from flue_actors._records import apply_event, fold
from flue_actors.errors import StoreSchemaVersionError
from flue_actors.store import SqliteEventStore
from flue_actors.store._sqlite import SCHEMA_VERSION
from flue_actors.testing.store_contract import varied_runs

from .conftest import (
    admission,
    iso,
    make_run_id,
    run_end,
    run_start,
)

CARRIER = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
BOOM: RunError = {"name": "Error", "message": "boom"}


# --- Listing --------------------------------------------------------------------------------------


# --- Rebuild and persistence ----------------------------------------------------------------------


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


def test_a_run_end_changes_only_the_outcome_fields() -> None:
    """Every field of a record that is not the outcome survives the fold of its run_end (the
    fields are read from the dataclass, so a field added later is held to it too)."""
    run_id = make_run_id(2)
    header = admission(run_id)
    header["input"] = {"text": "x"}
    header["traceCarrier"] = CARRIER
    before = fold(header, [])
    assert before is not None
    after = apply_event(before, run_end(run_id, index=1, duration_ms=5, timestamp=iso(5)))
    assert after is not None
    outcome = {"status", "ended_at", "is_error", "duration_ms", "result", "error"}
    for field in dataclasses.fields(before):
        if field.name not in outcome:
            assert getattr(after, field.name) == getattr(before, field.name), field.name
    assert (after.status, after.duration_ms, after.ended_at) == ("completed", 5, iso(5))


async def test_rebuild_records_replaces_tampered_records(tmp_path: Path) -> None:
    """SQLite-specific: corrupt the projection behind the store's back, then refold it."""
    location = tmp_path / "tamper.db"
    store = SqliteEventStore(location)
    try:
        ids = await varied_runs(store)
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
