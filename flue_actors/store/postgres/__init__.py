"""The PostgreSQL backend of the event log (selected by ``FLUE_DATABASE_URL=postgresql://...``)."""

from __future__ import annotations

from .schema import SCHEMA_VERSION
from .store import DEFAULT_SCHEMA, PostgresEventStore, StoreConnectionError
from .urls import is_postgres_url, redact_url

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "PostgresEventStore",
    "StoreConnectionError",
    "is_postgres_url",
    "redact_url",
]
