"""The event-sourced log and the backends behind it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _lazy
from ._base import EventStore, StoredEvent, StreamMeta, StreamPage, run_stream
from ._idempotency import MAX_KEY_LENGTH, KeyedRun, input_fingerprint
from ._offsets import BEFORE_START, NOW, format_offset, is_offset, parse_offset
from ._postgres import is_postgres_url as _is_postgres_url
from ._postgres import redact_url
from ._sqlite import SqliteEventStore

if TYPE_CHECKING:
    from ._postgres import PostgresEventStore

__all__ = [
    "BEFORE_START",
    "DEFAULT_DATABASE_URL",
    "MAX_KEY_LENGTH",
    "NOW",
    "EventStore",
    "KeyedRun",
    "PostgresEventStore",
    "SqliteEventStore",
    "StoredEvent",
    "StreamMeta",
    "StreamPage",
    "absolute_database_url",
    "format_offset",
    "input_fingerprint",
    "is_memory_url",
    "is_offset",
    "is_sqlite_url",
    "open_store",
    "parse_offset",
    "redact_url",
    "resolve_database_url",
    "run_stream",
]

_lazy.publish(__name__)

# The PostgreSQL store needs asyncpg: loaded when a URL or an access names it, not before.
__getattr__ = _lazy.lazy_exports(__name__, {"._postgres": ["PostgresEventStore"]})

DEFAULT_DATABASE_URL = "sqlite:///.flue/flue.db"


def resolve_database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else ``FLUE_DATABASE_URL``, else ``.flue/flue.db`` here."""
    return url or os.environ.get("FLUE_DATABASE_URL") or DEFAULT_DATABASE_URL


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite:") or url == ":memory:" or "://" not in url


def is_memory_url(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite store, which no other process can open."""
    return url in (":memory:", "sqlite://:memory:", "sqlite:///:memory:")


def absolute_database_url(url: str | None = None) -> str:
    """The URL with a relative SQLite path made absolute, so other processes (Ray hosts with
    another working directory) open the same file."""
    url = resolve_database_url(url)
    if is_memory_url(url) or not is_sqlite_url(url):
        return url
    location = url.removeprefix("sqlite://").removeprefix("/") if "://" in url else url
    return f"sqlite:///{Path(location).resolve()}"


def open_store(url: str | None = None) -> EventStore:
    """Open the store a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite://:memory:`` (or a
    plain file path) select the embedded SQLite log; ``postgresql://user@host/db`` (or
    ``postgres://``, optionally with ``?schema=name``) the PostgreSQL log, which connects on first
    use.
    """
    url = resolve_database_url(url)
    if _is_postgres_url(url):
        from ._postgres import PostgresEventStore

        return PostgresEventStore(url)
    if is_memory_url(url):
        return SqliteEventStore(":memory:")
    if url.startswith("sqlite://"):
        location = url.removeprefix("sqlite://")
        # sqlite:///x is relative to the working directory, sqlite:////x is absolute.
        location = location.removeprefix("/")
        return SqliteEventStore(Path(location))
    if "://" not in url:
        return SqliteEventStore(Path(url))
    scheme = url.split("://", 1)[0]
    raise ValueError(
        f"Unsupported FLUE_DATABASE_URL scheme {scheme!r}: use a sqlite:// URL, a file path or "
        "a postgresql:// URL. (The credentials in the URL are not repeated here.)"
    )
