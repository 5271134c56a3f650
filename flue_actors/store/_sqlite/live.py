"""Waking live readers: who waits on which stream, and what its tail is known to be.

Readers register a waiter, then look at the stream; the writer thread, after each commit, updates
the tails of watched streams and wakes their waiters (one hop per event loop). Commits by other
processes are heard through inotify (``inotify.py``), armed only while someone waits: then the
writer's connection is asked a few times whether anyone else committed (``PRAGMA data_version``
ignores a connection's own commits, so this process's commits, which inotify hears too, cost a
pragma and no query), and the watched tails are re-read only when someone did. A few times,
since WAL frames are heard before the commit is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol

from .worker import Changes

__all__ = ["LiveTails"]

# Tails of at most this many watched streams are kept; older ones are read again when needed.
_WATCHED_TAILS: Final = 4096
_RECHECK_DELAYS: Final = (0.005, 0.02, 0.1, 0.5)

Tail = tuple[int, bool]


def _resolve(futures: list[asyncio.Future[bool]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(True)


class Watcher(Protocol):
    """What hears other processes' commits (``inotify.ForeignCommitWatcher``)."""

    def arm(self) -> None: ...
    def disarm(self) -> None: ...
    def call_later(self, delay: float, function: Callable[[], None]) -> None: ...
    def close(self) -> None: ...


class LiveTails:
    def __init__(self, post: Callable[[Callable[[sqlite3.Connection], None]], None]) -> None:
        """``post`` runs a function on the writer's connection, in the writer's thread."""
        self._post = post
        self._lock = threading.Lock()
        self.waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._tails: OrderedDict[str, Tail] = OrderedDict()
        self._recheck_pending = False
        self._recheck_round = 0
        self._watcher: Watcher | None = None
        self._armed = False
        self._data_version: int | None = None
        self.closed = False

    def watch(self, watcher: Watcher) -> None:
        """Hear other processes' commits through ``watcher`` (armed while someone waits)."""
        self._watcher = watcher

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._watcher is not None:
                self._watcher.close()
                self._armed = False

    # --- readers ------------------------------------------------------------------------------

    def register(self, path: str) -> tuple[asyncio.Future[bool], Tail | None]:
        """A waiter for ``path``, and the stream's tail if it is known here."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._lock:
            self.waiters.setdefault(path, []).append(waiter)
            if not self._armed and self._watcher is not None and not self.closed:
                # Armed before the reader looks at the stream: a commit after that look wakes it.
                self._watcher.arm()
                self._armed = True
            # Tails are updated before waiters are woken, under this lock: a tail read here
            # reflects every commit that will not wake this waiter.
            return waiter, self._tails.get(path)

    def unregister(self, path: str, waiter: asyncio.Future[bool]) -> None:
        with self._lock:
            pending = self.waiters.get(path)
            if pending is not None and waiter in pending:
                pending.remove(waiter)
                if not pending:
                    del self.waiters[path]

    def remember(self, path: str, length: int, closed: bool) -> Tail:
        """Merge a tail someone read (tails only grow) and return what is now known."""
        with self._lock:
            known = self._tails.pop(path, (length, closed))
            merged = (max(known[0], length), known[1] or closed)
            self._tails[path] = merged
            while len(self._tails) > _WATCHED_TAILS:
                self._tails.popitem(last=False)
            return merged

    # --- writers ------------------------------------------------------------------------------

    def wake(self, changes: Changes) -> None:
        """After a commit (any thread): update watched tails, wake those streams' waiters."""
        with self._lock:
            for path, (length, closed) in changes.items():
                known = self._tails.get(path)
                if known is not None:
                    self._tails[path] = (max(known[0], length), known[1] or closed)
            woken = [fut for path in changes for fut in self.waiters.pop(path, ())]
        # One hop per event loop, however many readers wait there (hundreds of SSE readers
        # of one run are woken together).
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
        for fut in woken:
            by_loop.setdefault(fut.get_loop(), []).append(fut)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, futures)

    # --- other processes ----------------------------------------------------------------------

    def foreign_commit(self) -> None:
        """Another process wrote to the database (called from the inotify thread)."""
        with self._lock:
            if not self.waiters:
                # Nobody waits: stop hearing commits (this process's own, mostly) until
                # someone does.
                if self._armed and self._watcher is not None:
                    self._watcher.disarm()
                    self._armed = False
                return
            self._recheck_round = 0  # a new burst: the schedule starts again
            if self._recheck_pending:
                return
            self._recheck_pending = True
        self._post(self._recheck)

    def _recheck(self, conn: sqlite3.Connection) -> None:
        try:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version != self._data_version:  # another connection committed meanwhile
                self._data_version = version
                self._wake_moved(conn)
        finally:
            self._schedule_recheck()

    def _schedule_recheck(self) -> None:
        # A writer's WAL frames (what inotify hears) land before its commit is visible (the
        # -shm index, updated after the fsync, makes no inotify event): look again after a few
        # short, growing delays, then stop until the next commit is heard.
        with self._lock:
            if self._recheck_round >= len(_RECHECK_DELAYS) or self.closed or not self._watcher:
                self._recheck_pending = False
                return
            delay = _RECHECK_DELAYS[self._recheck_round]
            self._recheck_round += 1
            watcher = self._watcher
        watcher.call_later(delay, lambda: self._post(self._recheck))

    def _wake_moved(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            paths = list(self.waiters)
        changes: Changes = {}
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for path, length, closed in conn.execute(
                f"SELECT path, length, closed FROM streams WHERE path IN ({marks})", chunk
            ):
                with self._lock:
                    known = self._tails.get(path)
                if known is None:
                    # Its waiter is still reading the tail itself: leave what was seen here
                    # for that read to merge with, rather than waking it for nothing.
                    self.remember(path, int(length), bool(closed))
                elif length > known[0] or (closed and not known[1]):
                    changes[path] = (int(length), bool(closed))
        if changes:
            self.wake(changes)
