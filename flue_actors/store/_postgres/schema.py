"""The PostgreSQL schema: created by the store itself, versioned, never migrated silently."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    AnyConnection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

from ...errors import StoreSchemaVersionError

__all__ = ["SCHEMA_VERSION", "ensure_schema", "quote_schema"]

SCHEMA_VERSION: Final = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# ``{s}`` is the quoted schema. Names are compared and ordered byte-wise (COLLATE "C"), as in
# SQLite. Event JSON is text, stored exactly as serialized, so reads return the same bytes.
_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.flue_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.streams (
    path text COLLATE "C" PRIMARY KEY,
    length bigint NOT NULL DEFAULT 0,
    closed boolean NOT NULL DEFAULT false,
    header text,
    watched_until timestamptz
);
CREATE TABLE IF NOT EXISTS {s}.events (
    path text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    type text,
    idempotency_key text,
    data text NOT NULL,
    PRIMARY KEY (path, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON {s}.events (path, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_lifecycle ON {s}.events (path, seq)
    WHERE type IN ('run_start', 'run_resume', 'run_end');
CREATE TABLE IF NOT EXISTS {s}.runs (
    run_id text COLLATE "C" PRIMARY KEY,
    workflow_name text COLLATE "C" NOT NULL,
    status text NOT NULL,
    started_at text COLLATE "C" NOT NULL,
    input text,
    trace_carrier text,
    ended_at text,
    is_error boolean,
    duration_ms bigint,
    result text,
    error text
);
CREATE TABLE IF NOT EXISTS {s}.run_owners (
    run_id text COLLATE "C" PRIMARY KEY,
    owner text COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS run_owners_by_owner ON {s}.run_owners (owner);
CREATE TABLE IF NOT EXISTS {s}.owners (
    owner text COLLATE "C" PRIMARY KEY,
    heartbeat_ms bigint NOT NULL
);
{keys}
CREATE INDEX IF NOT EXISTS runs_newest ON {s}.runs (started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON {s}.runs (status, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_workflow
    ON {s}.runs (workflow_name, started_at DESC, run_id DESC);
"""

# Idempotency keys came after version 1 shipped: added (never altered) to a version-1 schema
# that lacks them, under the same lock, so older databases keep working.
_KEYS_DDL = """
CREATE TABLE IF NOT EXISTS {s}.run_keys (
    workflow_name text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    run_id text COLLATE "C" NOT NULL,
    fingerprint text NOT NULL,
    PRIMARY KEY (workflow_name, key)
);
"""


def quote_schema(schema: str) -> str:
    """The schema as a quoted identifier; only plain names (letters, digits, ``_``) are accepted."""
    if not _NAME.match(schema):
        raise ValueError(
            f"Invalid PostgreSQL schema name {schema!r}: use up to 63 letters, digits and "
            "underscores, not starting with a digit."
        )
    return f'"{schema}"'


async def ensure_schema(conn: AnyConnection, schema: str, *, location: str) -> None:
    """Create the schema if it is new; refuse one written at another version.

    Openers are serialized by an advisory lock, so racing processes cannot trip over each other's
    ``CREATE ... IF NOT EXISTS``. An existing schema's version is checked before anything is
    created in it: a different version is never touched.
    """
    quoted = quote_schema(schema)
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('flue_actors.schema:' || $1::text))", schema
        )
        found: str | None = None
        if await conn.fetchval("SELECT to_regclass($1)", f"{quoted}.flue_meta") is not None:
            found = await conn.fetchval(
                f"SELECT value FROM {quoted}.flue_meta WHERE key = 'schema_version'"
            )
        if found is not None:
            if int(found) != SCHEMA_VERSION:
                raise StoreSchemaVersionError(
                    location=location, found=int(found), supported=SCHEMA_VERSION
                )
            await conn.execute(_KEYS_DDL.format(s=quoted))
            return
        await conn.execute(_DDL.format(s=quoted, keys=_KEYS_DDL.format(s=quoted)))
        await conn.execute(
            f"INSERT INTO {quoted}.flue_meta (key, value) VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO NOTHING",
            str(SCHEMA_VERSION),
        )
