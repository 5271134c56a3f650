"""Fixtures for the store tests beyond the contract (``test_contract.py`` runs that one).

Every test here that takes ``store`` runs once per backend in :data:`BACKENDS`. The factories are
the contract's (:mod:`flue_actors.testing.store_contract`), re-exported for these tests.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from flue_actors.store import EventStore, PostgresEventStore, SqliteEventStore
from flue_actors.testing.store_contract import (
    admission,
    append_events,
    gather_settled,
    iso,
    log_event,
    make_run_id,
    read_all,
    run_end,
    run_resume,
    run_start,
)

__all__ = [
    "BACKENDS",
    "POSTGRES_URL",
    "admission",
    "append_events",
    "drop_scratch_schema",
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

# The PostgreSQL server the "postgres" backend uses. It must be reachable: an unreachable server
# fails those tests (CI has one), it never skips them.
POSTGRES_URL = os.environ.get("FLUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Schemas the "postgres" backend created and that are not dropped yet.
_SCRATCH_SCHEMAS: set[str] = set()


def scratch_schema(tmp_path: Path) -> str:
    """The schema a test's PostgreSQL stores use: one per ``tmp_path``, so reopening finds it."""
    schema = "flue_t_" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:24]
    _SCRATCH_SCHEMAS.add(schema)
    return schema


async def drop_scratch_schema(schema: str) -> None:
    """Drop one schema :func:`scratch_schema` handed out (after its stores are closed)."""
    _SCRATCH_SCHEMAS.discard(schema)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


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
