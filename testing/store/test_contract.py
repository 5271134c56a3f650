"""This project's stores pass the store contract the kit ships to third-party stores."""

from __future__ import annotations

from pathlib import Path

from flue_actors.store import EventStore, PostgresEventStore, SqliteEventStore
from flue_actors.testing.store_contract import EventStoreContract

from .conftest import POSTGRES_URL, drop_scratch_schema, scratch_schema


class TestSqliteMemoryStore(EventStoreContract):
    reopens = False

    def open_store(self, location: Path) -> EventStore:
        return SqliteEventStore(":memory:")


class TestSqliteFileStore(EventStoreContract):
    # The same SQL as the in-memory store, which runs the properties' default count; a file
    # store's example also pays for creating and fsyncing a database file.
    property_examples = 50

    def open_store(self, location: Path) -> EventStore:
        return SqliteEventStore(location / "flue.db")


class TestPostgresStore(EventStoreContract):
    """In a schema of its own per test location, dropped afterwards. The server must be
    reachable: an unreachable one fails these tests (CI has one), it never skips them."""

    # A fresh store is a schema created and dropped (about 0.25 s): 150 examples of each
    # property were a minute and a half of a loaded machine's suite. The SQLite stores run the
    # default count over the same rules.
    property_examples = 40

    def open_store(self, location: Path) -> EventStore:
        return PostgresEventStore(POSTGRES_URL, schema=scratch_schema(location), max_size=8)

    async def discard(self, location: Path) -> None:
        await drop_scratch_schema(scratch_schema(location))
