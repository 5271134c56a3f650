"""Identifiers: ``run_<ULID>``, ``op_<ULID>``, ``turn_<ULID>`` and plain UUIDs, all injectable."""

from __future__ import annotations

import os
import re
import uuid
from itertools import count
from typing import Protocol

from .clock import Clock, SystemClock

__all__ = ["RUN_ID_PATTERN", "IdSource", "SequentialIds", "UlidIds", "encode_ulid", "is_run_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RUN_ID_PATTERN = re.compile(r"^run_[0-9A-HJKMNP-TV-Z]{26}$")


def is_run_id(value: str) -> bool:
    return RUN_ID_PATTERN.match(value) is not None


def encode_ulid(value: int) -> str:
    """Crockford base32 of a 128-bit integer: 26 characters, lexicographic order = numeric."""
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


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
