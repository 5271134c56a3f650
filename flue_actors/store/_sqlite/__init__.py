"""The embedded SQLite event store."""

from .schema import SCHEMA_VERSION
from .store import SqliteEventStore

__all__ = ["SCHEMA_VERSION", "SqliteEventStore"]
