"""The PostgreSQL backend of the event log (selected by ``FLUE_DATABASE_URL=postgresql://...``).

Only the URL helpers load eagerly: the store itself needs asyncpg, which an embedded (SQLite)
deployment or a test run never uses, so it loads on first access to one of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports
from .urls import is_postgres_url, redact_url

if TYPE_CHECKING:
    from .schema import SCHEMA_VERSION
    from .store import DEFAULT_SCHEMA, PostgresEventStore, StoreConnectionError

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "PostgresEventStore",
    "StoreConnectionError",
    "is_postgres_url",
    "redact_url",
]

__getattr__ = lazy_exports(
    __name__,
    {
        ".schema": ["SCHEMA_VERSION"],
        ".store": ["DEFAULT_SCHEMA", "PostgresEventStore", "StoreConnectionError"],
    },
)
