"""Identifiers: ``run_<ULID>``, ``op_<ULID>``, ``turn_<ULID>`` and plain UUIDs, all injectable."""

from __future__ import annotations

import hashlib
import os
import random
import re
import uuid
from itertools import count
from typing import Final, Protocol

from ._clock import Clock, SystemClock

__all__ = [
    "RUN_ID_PATTERN",
    "IdSource",
    "RunScopedIds",
    "SequentialIds",
    "UlidIds",
    "encode_ulid",
    "is_run_id",
    "lane_ids",
    "run_ids",
]

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


# A ULID's 80 random bits tell apart ids drawn in the same millisecond, by any process; they
# are not a secret (a run id is no credential). A generator seeded from os.urandom, and seeded
# again in a forked child, gives that without a system call per id (every run, session,
# operation and turn takes one).
_RANDOM: Final = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOM.seed)


class IdSource(Protocol):
    def ulid(self) -> str: ...

    def uuid(self) -> str: ...


class UlidIds:
    """Real ids: ULIDs from the clock and ``os.urandom``; UUID4s."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def ulid(self) -> str:
        randomness = _RANDOM.getrandbits(80)
        return encode_ulid((self._clock.now_ms() & 0xFFFFFFFFFFFF) << 80 | randomness)

    def uuid(self) -> str:
        return str(uuid.uuid4())

    def for_run(self, run_id: str) -> IdSource:
        return RunScopedIds(run_id)


class SequentialIds:
    """Deterministic ids for tests: ULID-shaped counters, so every id pattern still matches."""

    def __init__(self, *, start: int = 0) -> None:
        self._ulids = count(start + 1)
        self._uuids = count(start + 1)

    def ulid(self) -> str:
        return encode_ulid(next(self._ulids))

    def uuid(self) -> str:
        return str(uuid.UUID(int=next(self._uuids)))

    def for_lane(self, lane: str) -> IdSource:
        """A session's own ids (see ``lane_ids``): a counter of its own, in a range of the
        128-bit space picked by a hash of the lane's name, so lanes never share an id."""
        return SequentialIds(start=_lane_hash(lane) << 40)

    def for_run(self, run_id: str) -> IdSource:
        """Each run counts from 1 on its own, so a run replayed from its log (resumed, or
        checked by the kit) draws the same ids again whatever ran before it."""
        return SequentialIds()


class RunScopedIds:
    """The ids one run draws: a pure function of the run id and how many were drawn before.

    A resumed run executes its workflow again from the top and must draw the ids it drew the
    first time (the log's operations, turns and conversations are named by them), so they
    cannot come from the clock or ``os.urandom``. ULIDs keep the run's own timestamp (they sort
    in the order drawn) over 80 bits seeded by a hash of the run id; UUIDs are version 4 from
    the hash of the run id and a counter.
    """

    __slots__ = ("_key", "_run_id", "_seed", "_time", "_ulids", "_uuids")

    def __init__(self, run_id: str, *, lane: str | None = None) -> None:
        self._run_id = run_id
        self._key = run_id if lane is None else f"{run_id}/{lane}"
        digest = hashlib.blake2b(self._key.encode(), digest_size=16).digest()
        self._seed = int.from_bytes(digest[:10], "big")
        self._time = _ulid_time(run_id)
        self._ulids = count(0)
        self._uuids = count(0)

    def for_lane(self, lane: str) -> IdSource:
        """A session's own ids (see ``lane_ids``): seeded by the run id and the lane's name."""
        return RunScopedIds(self._run_id, lane=lane)

    def ulid(self) -> str:
        low = (self._seed + next(self._ulids)) & 0xFFFFFFFFFFFFFFFFFFFF
        return encode_ulid(self._time << 80 | low)

    def uuid(self) -> str:
        key = f"{self._key}/{next(self._uuids)}".encode()
        digest = hashlib.blake2b(key, digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))


def _ulid_time(run_id: str) -> int:
    """The 48-bit timestamp of a ``run_<ULID>`` (0 for an id of another shape)."""
    if not is_run_id(run_id):
        return 0
    value = 0
    for char in run_id[4:14]:
        value = value * 32 + _CROCKFORD.index(char)
    return value & 0xFFFFFFFFFFFF


def run_ids(source: IdSource, run_id: str) -> IdSource:
    """The ids ``run_id`` draws from ``source``: replayable when the source can scope itself
    to a run (``for_run``), else ``source`` itself (a resumed run then diverges at its first
    id, and ends ``replay_divergence`` rather than mixing two lives' ids)."""
    scoped = getattr(source, "for_run", None)
    return source if scoped is None else scoped(run_id)


def lane_ids(source: IdSource, lane: str) -> IdSource:
    """The ids one session (``lane``: its scope and name) draws from its run's ``source``.

    Sessions run concurrently draw their ids in whatever order their answers arrive, which a
    replay (answering from the log, at once) does not repeat; each drawing from its own source
    draws the same ids in every life. A source that cannot scope itself (no ``for_lane``) is
    shared: concurrent sessions then resume only if they drew in the same order."""
    scoped = getattr(source, "for_lane", None)
    return source if scoped is None else scoped(lane)


def _lane_hash(lane: str) -> int:
    return int.from_bytes(hashlib.blake2b(lane.encode(), digest_size=8).digest(), "big")
