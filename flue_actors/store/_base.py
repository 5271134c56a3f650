"""The event log's protocol: what every backend (SQLite, PostgreSQL) must do, and nothing more.

Streams are append-only sequences addressed by path (``runs/<runId>``). A run's stream carries a
private header (the admission event) written when the run is admitted; run records are the fold of
that header and the stream's lifecycle events, maintained in the same transaction as every append.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from .._events import RunAdmittedEvent
from .._jsonvalue import loads
from .._records import RunPage, RunRecord, RunStatus
from ._idempotency import KeyedRun

__all__ = [
    "DEFAULT_READ_LIMIT",
    "MAX_READ_LIMIT",
    "EventStore",
    "StoredEvent",
    "StreamMeta",
    "StreamPage",
    "normalize_read_limit",
    "run_stream",
]

DEFAULT_READ_LIMIT = 100
MAX_READ_LIMIT = 1000


def run_stream(run_id: str) -> str:
    return f"runs/{run_id}"


def normalize_read_limit(limit: int | None) -> int:
    if limit is None or limit <= 0:
        return DEFAULT_READ_LIMIT
    return min(limit, MAX_READ_LIMIT)


@dataclass(frozen=True)
class StoredEvent:
    """One event as stored: its offset, its sequence, and its JSON text (parsed on demand)."""

    offset: str
    seq: int
    raw: str

    @cached_property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = loads(self.raw)
        return parsed


@dataclass(frozen=True, slots=True)
class StreamPage:
    """A read: events strictly after the requested offset, and where the reader stands."""

    events: list[StoredEvent]
    next_offset: str
    up_to_date: bool
    closed: bool


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """``next_offset`` is the offset of the last event (``-1`` when empty); ``length`` its count."""

    next_offset: str
    length: int
    closed: bool


class EventStore(Protocol):
    """The log. Every method is safe to call concurrently from one event loop."""

    async def admit_run(self, header: RunAdmittedEvent, *, owner: str | None = None) -> bool:
        """Create the run's record and stream in one transaction. First writer wins: returns
        ``False`` and changes nothing if the run already exists. ``owner`` names the host that
        will execute it (see :meth:`orphaned_runs`)."""
        ...

    async def admit_runs(
        self, headers: Sequence[RunAdmittedEvent], *, owner: str | None = None
    ) -> list[bool]:
        """Admit several runs for one ``owner`` in one transaction: all of them or, if it
        fails, none. Each run is first writer wins, as in :meth:`admit_run`; returns, in order,
        whether each was admitted now (``False``: it already existed and is unchanged).

        A header with an ``idempotencyKey`` claims that key for its workflow in the same
        transaction; if the key is already claimed (by an earlier run, or an earlier header of
        this batch), the run is not admitted (``False``) and :meth:`keyed_runs` names the run
        that holds it."""
        ...

    async def keyed_runs(self, workflow_name: str, keys: Sequence[str]) -> dict[str, KeyedRun]:
        """The runs the given idempotency keys of a workflow admitted (keys never used are
        absent). Keys are kept as long as the run records."""
        ...

    async def heartbeat(self, owner: str, now_ms: int) -> None:
        """Record that ``owner`` is alive at ``now_ms``: its runs are not orphans."""
        ...

    async def owner_of(self, run_id: str) -> str | None: ...

    async def read_header(self, run_id: str) -> RunAdmittedEvent | None:
        """The run's admission header (``None`` if there is no such run)."""
        ...

    async def claim_run(self, run_id: str, owner: str, *, previous: str | None) -> bool:
        """Make ``owner`` the run's owner if ``previous`` still is (``None``: it has none), in
        one compare-and-set: of two processes taking over one orphaned run, one wins."""
        ...

    async def orphaned_runs(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        """Active runs nobody is executing. With ``owner``: the owner's active runs admitted
        before ``stale_before_ms`` (a restarted host asking about its previous life). Without:
        active runs whose owner's last heartbeat is before ``stale_before_ms``, or that were
        admitted before it and whose owner never heartbeated."""
        ...

    async def prune_owners(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        """Forget owners last heard of before ``stale_before_ms`` that own no active run, so the
        owners table holds the living (and the dead whose runs are not ended yet), not every
        process that ever ran. With ``owner``: only that one (an owner leaving on exit).
        Returns the owners forgotten. A forgotten owner that heartbeats again is recorded anew."""
        ...

    async def create_stream(self, path: str) -> None:
        """Create an empty stream; idempotent (an existing stream keeps its events)."""
        ...

    async def append(
        self,
        path: str,
        events: Sequence[dict[str, Any]],
        *,
        expected_seq: int | None = None,
        close: bool = False,
    ) -> list[str]:
        """Append atomically and return the new offsets.

        ``expected_seq`` is the sequence the first event must get: a writer that is behind gets
        :class:`~flue_actors.errors.StreamConflictError` and nothing is written. ``close`` closes
        the stream in the same transaction. A missing stream raises ``StreamMissingError``; a
        closed one ``StreamClosedError``.
        """
        ...

    async def close_stream(self, path: str) -> None:
        """Close a stream; idempotent. Wakes every waiter."""
        ...

    async def read(self, path: str, *, offset: str = "-1", limit: int | None = None) -> StreamPage:
        """Events strictly after ``offset`` (``-1``, ``now`` or an offset), at most ``limit``
        (default 100, at most 1000). A missing stream reads as empty and open."""
        ...

    async def stream_meta(self, path: str) -> StreamMeta | None: ...

    async def wait_for_append(self, path: str, *, length: int, timeout: float) -> bool:
        """Wait until the stream holds more than ``length`` events or is closed. ``False`` on
        timeout. Woken by the backend's notification mechanism, never by polling."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        """Newest first (``startedAt`` then ``runId``, descending), filters AND-combined."""
        ...

    async def rebuild_records(self) -> int:
        """Drop every run record and refold it from the log. Returns how many were rebuilt."""
        ...

    async def close(self) -> None: ...
