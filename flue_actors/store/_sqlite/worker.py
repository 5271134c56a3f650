"""The threads that own SQLite connections, and the group commit.

The writer thread drains its queue and commits everything it found in a single transaction,
an fsync shared by every run that appended meanwhile. A batch in which a request is refused
runs again with each request in its own savepoint, so the refused one never takes another's
events with it. Results go back to each caller's
event loop in one hop per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

__all__ = ["Changes", "DatabaseThread", "Work"]

T = TypeVar("T")
# What a transaction changed: each stream's new (length, closed), for waking live readers.
Changes = dict[str, tuple[int, bool]]
Work = Callable[[sqlite3.Connection, Changes], T]
_MAX_BATCH: Final = 1024
# How long a commit waits for another process's writer (as the connections' busy_timeout).
LOCK_WAIT_SECONDS: Final = 10.0
# The longest nap between two tries for the write lock.
_LOCK_NAP_MAX: Final = 0.002


def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's writer in short naps.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15... ms between tries, so with two
    processes writing one store (``serve --workers``, ``batch --workers``) each commit waited
    about 10 ms for a lock the other held for one or two (``batch --workers 2`` of 10,000 items:
    2.2 to 2.6 s of its 5 s in ``BEGIN``). The writer connection has no busy timeout of its
    own; this naps 0.1 ms, doubling up to 2 ms, for at most ``LOCK_WAIT_SECONDS``.
    """
    nap, deadline = 0.0001, time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(nap)
        nap = min(nap * 2, _LOCK_NAP_MAX)


class _Job(Generic[T]):
    __slots__ = ("error", "future", "loop", "result", "work")

    def __init__(self, work: Work[T], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.future: asyncio.Future[T] = loop.create_future()
        self.result: T | None = None
        self.error: BaseException | None = None


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class DatabaseThread(threading.Thread):
    """Owns one connection. ``transactional`` threads commit each drained batch as one unit."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        transactional: bool,
        on_commit: Callable[[Changes], None],
        name: str,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._connection = connection
        self._transactional = transactional
        if transactional:
            connection.execute("PRAGMA busy_timeout = 0")  # the lock is waited for by _begin
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Job[Any] | Callable[[sqlite3.Connection], None] | None] = (
            queue.SimpleQueue()
        )

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        job = _Job(work, asyncio.get_running_loop())
        self._queue.put(job)
        return job.future

    def post(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``work`` in this thread, for callers without an event loop; nobody waits on it."""
        self._queue.put(work)

    def stop(self) -> None:
        self._queue.put(None)
        self.join()
        self._connection.close()

    def run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            if not isinstance(first, _Job):
                first(self._connection)
                continue
            jobs = [first]
            while len(jobs) < _MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                if not isinstance(job, _Job):
                    job(self._connection)
                    continue
                jobs.append(job)
            changed = self._execute(jobs)
            if changed:
                self._on_commit(changed)
            self._deliver(jobs)

    def _execute(self, jobs: list[_Job[Any]]) -> Changes:
        changed: Changes = {}
        conn = self._connection
        if not self._transactional:
            for job in jobs:
                self._run_job(job, conn, changed)
            return changed
        try:
            _begin(conn)
            # Optimistically without a savepoint per request (two statements each, a sixth of
            # a run's statements): requests are refused rarely, and then the batch starts over
            # with each request in its own savepoint, so the refused one takes nobody's events
            # with it. A request's work only reads and writes the database, so running it again
            # in a transaction that starts from the same state gives the same outcome.
            if not all(self._run_job(job, conn, changed) for job in jobs):
                conn.execute("ROLLBACK")
                changed.clear()
                for job in jobs:
                    job.result, job.error = None, None
                _begin(conn)
                for job in jobs:
                    conn.execute("SAVEPOINT job")
                    if self._run_job(job, conn, changed):
                        conn.execute("RELEASE job")
                    else:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as failure:
            # The batch did not commit, so no request in it may be acknowledged.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for job in jobs:
                job.error = job.error or failure
            return {}
        return changed

    @staticmethod
    def _run_job(job: _Job[Any], conn: sqlite3.Connection, changed: Changes) -> bool:
        mine: Changes = {}
        try:
            job.result = job.work(conn, mine)
        except BaseException as error:  # delivered to the awaiting caller, never swallowed
            job.error = error
            return False
        changed.update(mine)
        return True

    @staticmethod
    def _deliver(jobs: list[_Job[Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, loop_jobs in by_loop.items():
            # A caller whose loop has gone away is not waiting for anything any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, loop_jobs)
