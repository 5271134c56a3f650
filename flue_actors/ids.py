"""Identifiers: ``run_<ULID>``, ``op_<ULID>``, ``turn_<ULID>`` and plain UUIDs, all injectable."""

from __future__ import annotations

import os
import re
import uuid
from itertools import count
from typing import Final, Protocol

from .clock import Clock, SystemClock

__all__ = ["RUN_ID_PATTERN", "IdSource", "SequentialIds", "UlidIds", "encode_ulid", "is_run_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RUN_ID_PATTERN = re.compile(r"^run_[0-9A-HJKMNP-TV-Z]{26}$")


def is_run_id(value: str) -> bool:
    return RUN_ID_PATTERN.match(value) is not None


# Crockford pairs for every 10-bit value: an id is 13 lookups and one join. Every run, session,
# operation and turn takes one, and a character-at-a-time loop was a visible share of a run.
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def encode_ulid(value: int) -> str:
    """Crockford base32 of a 128-bit integer: 26 characters, lexicographic order = numeric."""
    p = _PAIRS
    return "".join(
        (
            p[value >> 120 & 1023], p[value >> 110 & 1023], p[value >> 100 & 1023],
            p[value >> 90 & 1023], p[value >> 80 & 1023], p[value >> 70 & 1023],
            p[value >> 60 & 1023], p[value >> 50 & 1023], p[value >> 40 & 1023],
            p[value >> 30 & 1023], p[value >> 20 & 1023], p[value >> 10 & 1023], p[value & 1023],
        )
    )  # fmt: skip


class IdSource(Protocol):
    def ulid(self) -> str: ...

    def uuid(self) -> str: ...


class UlidIds:
    """Real ids: ULIDs from the clock and ``os.urandom``; UUID4s."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def ulid(self) -> str:
        randomness = int.from_bytes(os.urandom(10), "big")
        return encode_ulid((self._clock.now_ms() & 0xFFFFFFFFFFFF) << 80 | randomness)

    def uuid(self) -> str:
        return str(uuid.uuid4())


class SequentialIds:
    """Deterministic ids for tests: ULID-shaped counters, so every id pattern still matches."""

    def __init__(self) -> None:
        self._ulids = count(1)
        self._uuids = count(1)

    def ulid(self) -> str:
        return encode_ulid(next(self._ulids))

    def uuid(self) -> str:
        return str(uuid.UUID(int=next(self._uuids)))
