"""Values to and from PostgreSQL rows.

PostgreSQL ``text`` cannot hold NUL, which SQLite (and Python) strings can. Names that are
compared or ordered (paths, run ids, workflow names, timestamps, types, keys) are stored with an
escape that keeps byte order: U+0001 becomes U+0001 U+0002 and NUL becomes U+0001 U+0001.
Strings without either character (all of them in practice) are stored unchanged. Columns are
``COLLATE "C"``, so ordering is by code point exactly as in SQLite. Event JSON never contains a
raw NUL (the serializer escapes control characters), so it is stored as given.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import asyncpg

from ..._jsonvalue import UNSET, dumps, loads
from ..._records import RunRecord
from .._listing import RUN_COLUMNS

__all__ = ["RUN_COLUMNS", "from_db", "notify_key", "record_from_row", "record_row", "to_db"]

# pg_notify payloads must stay under 8000 bytes; longer paths are announced by their digest.
_MAX_NOTIFY_PATH: Final = 1000
_UNESCAPE = re.compile("\x01([\x01\x02])")


def to_db(text: str) -> str:
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def _unescape(match: re.Match[str]) -> str:
    return "\x00" if match.group(1) == "\x01" else "\x01"


def from_db(text: str) -> str:
    return text if "\x01" not in text else _UNESCAPE.sub(_unescape, text)


def _optional_to_db(text: str | None) -> str | None:
    return None if text is None else to_db(text)


def _optional_from_db(text: str | None) -> str | None:
    return None if text is None else from_db(text)


def notify_key(db_path: str) -> str:
    """What a NOTIFY carries for a stream (its stored path, or a digest of a very long one)."""
    if len(db_path) <= _MAX_NOTIFY_PATH // 4 or len(db_path.encode()) <= _MAX_NOTIFY_PATH:
        return db_path
    return "#sha256:" + hashlib.sha256(db_path.encode()).hexdigest()


def _optional_json(value: Any) -> str | None:
    return None if value is UNSET or value is None else dumps(value)


def record_row(record: RunRecord) -> tuple[Any, ...]:
    """The ``runs`` row of a record, in :data:`RUN_COLUMNS` order."""
    return (
        to_db(record.run_id),
        to_db(record.workflow_name),
        record.status,
        to_db(record.started_at),
        None if record.input is UNSET else dumps(record.input),
        _optional_json(record.trace_carrier),
        _optional_to_db(record.ended_at),
        record.is_error,
        record.duration_ms,
        None if record.result is UNSET else dumps(record.result),
        _optional_json(record.error),
    )


def record_from_row(row: asyncpg.Record) -> RunRecord:
    inp, carrier, result, error = row["input"], row["trace_carrier"], row["result"], row["error"]
    return RunRecord(
        run_id=from_db(row["run_id"]),
        workflow_name=from_db(row["workflow_name"]),
        status=row["status"],
        started_at=from_db(row["started_at"]),
        input=UNSET if inp is None else loads(inp),
        trace_carrier=None if carrier is None else loads(carrier),
        ended_at=_optional_from_db(row["ended_at"]),
        is_error=row["is_error"],
        duration_ms=row["duration_ms"],
        result=UNSET if result is None else loads(result),
        error=None if error is None else loads(error),
    )
