"""The SQLite schema: created by the store itself, with a version that is never migrated."""

from __future__ import annotations

import sqlite3
from typing import Final

from ...errors import StoreSchemaVersionError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "connect", "ensure_schema"]

SCHEMA_VERSION: Final = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS flue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    path TEXT PRIMARY KEY,
    length INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    header TEXT
);
CREATE TABLE IF NOT EXISTS events (
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT,
    idempotency_key TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (path, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (path, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    input TEXT,
    trace_carrier TEXT,
    ended_at TEXT,
    is_error INTEGER,
    duration_ms INTEGER,
    result TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS run_keys (
    workflow_name TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (workflow_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_owners (run_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS run_owners_by_owner ON run_owners (owner);
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, heartbeat_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_newest ON runs (started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow_name, started_at DESC, run_id DESC);
"""


def connect(location: str, synchronous: str) -> sqlite3.Connection:
    uri = location.startswith("file:")
    conn = sqlite3.connect(location, isolation_level=None, check_same_thread=False, uri=uri)
    conn.execute("PRAGMA busy_timeout = 10000")
    if location != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def ensure_schema(conn: sqlite3.Connection, location: str) -> None:
    """Create the tables if missing; refuse a database of another schema version."""
    # Every statement is CREATE ... IF NOT EXISTS, so racing openers cannot conflict.
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM flue_meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO flue_meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreSchemaVersionError(
                location=location, found=int(row[0]), supported=SCHEMA_VERSION
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
