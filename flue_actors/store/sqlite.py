"""The embedded log: SQLite in WAL mode, one file (or ``:memory:`` for tests).

All writes go through one writer thread that drains its queue and commits everything it found in a
single transaction (group commit), each request inside its own savepoint so one refused append
never takes another run's events with it. That keeps ``synchronous=FULL`` (an fsync per commit,
so an acknowledged event survives power loss) affordable under load: the fsync is shared by every
run that appended meanwhile. Reads use their own connection and thread, so they never wait for an
fsync. An in-memory database has one connection, so there one thread does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Literal, TypeVar

from ..clock import format_timestamp
from ..errors import (
    StoreSchemaVersionError,
    StreamClosedError,
    StreamConflictError,
    StreamMissingError,
    StreamPayloadConflictError,
)
from ..events import LIFECYCLE_EVENT_TYPES, RunAdmittedEvent
from ..jsonvalue import UNSET, dumps, loads
from ..records import (
    RunPage,
    RunRecord,
    RunStatus,
    apply_event,
    decode_cursor,
    encode_cursor,
    fold,
    normalize_limit,
    record_from_admission,
)
from .base import StoredEvent, StreamMeta, StreamPage, normalize_read_limit
from .offsets import NOW, format_offset, parse_offset
from .sqlite_watch import ForeignCommitWatcher

__all__ = ["SCHEMA_VERSION", "SqliteEventStore"]

SCHEMA_VERSION: Final = 1
_RUN_PREFIX: Final = "runs/"
_MAX_BATCH: Final = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    path TEXT PRIMARY KEY,
    length INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    header TEXT
);
CREATE TABLE IF NOT EXISTS events (
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT,
    idempotency_key TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (path, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (path, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    input TEXT,
    trace_carrier TEXT,
    ended_at TEXT,
    is_error INTEGER,
    duration_ms INTEGER,
    result TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS run_owners (run_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS run_owners_by_owner ON run_owners (owner);
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, heartbeat_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_newest ON runs (started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow_name, started_at DESC, run_id DESC);
"""

T = TypeVar("T")
# What a transaction changed: each stream's new (length, closed), for waking live readers.
Changes = dict[str, tuple[int, bool]]
Work = Callable[[sqlite3.Connection, Changes], T]
_WATCHED_TAILS: Final = 4096
_RECHECK_DELAYS: Final = (0.005, 0.02, 0.1, 0.5)


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


class _DatabaseThread(threading.Thread):
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
            conn.execute("BEGIN IMMEDIATE")
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


def _connect(location: str, synchronous: str) -> sqlite3.Connection:
    uri = location.startswith("file:")
    conn = sqlite3.connect(location, isolation_level=None, check_same_thread=False, uri=uri)
    conn.execute("PRAGMA busy_timeout = 10000")
    if location != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


class SqliteEventStore:
    """The embedded default store. ``path`` is a file (created with its folder) or ``:memory:``."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
    ) -> None:
        self.location = str(path)
        if self.location != ":memory:":
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._waiters_lock = threading.Lock()
        # The tails of streams someone waits on, kept current by the writer, so a live reader
        # that goes back to waiting needs no database read to know whether it is behind.
        self._tails: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._recheck_lock = threading.Lock()
        self._recheck_pending = False
        self._recheck_round = 0
        writer_conn = _connect(self.location, synchronous)
        try:
            self._ensure_schema(writer_conn)
        except BaseException:
            writer_conn.close()
            raise
        self._writer = _DatabaseThread(
            writer_conn, transactional=True, on_commit=self._wake, name="flue-sqlite-writer"
        )
        self._writer.start()
        if self.location == ":memory:":
            self._reader = self._writer
        else:
            self._reader = _DatabaseThread(
                _connect(self.location, synchronous),
                transactional=False,
                on_commit=self._wake,
                name="flue-sqlite-reader",
            )
            self._reader.start()
        # Other processes (Ray hosts) writing to the same file wake this process's readers.
        self._watcher = (
            None
            if self.location == ":memory:"
            else ForeignCommitWatcher(Path(self.location), self._foreign_commit)
        )

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.location!r})"

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        # Every statement is CREATE ... IF NOT EXISTS, so racing openers cannot conflict.
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT value FROM flue_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO flue_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreSchemaVersionError(
                    location=self.location, found=int(row[0]), supported=SCHEMA_VERSION
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- notification -------------------------------------------------------------------------

    def _wake(self, changes: Changes) -> None:
        with self._waiters_lock:
            for path, (length, closed) in changes.items():
                known = self._tails.get(path)
                if known is not None:
                    self._tails[path] = (max(known[0], length), known[1] or closed)
            woken = [fut for path in changes for fut in self._waiters.pop(path, ())]
        # One hop per event loop, however many readers wait there (hundreds of SSE readers
        # of one run are woken together).
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
        for fut in woken:
            by_loop.setdefault(fut.get_loop(), []).append(fut)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_waiters, futures)

    def _foreign_commit(self) -> None:
        with self._waiters_lock:
            if not self._waiters:
                return
        with self._recheck_lock:
            self._recheck_round = 0  # a new burst: the schedule starts again
            if self._recheck_pending:
                return
            self._recheck_pending = True
        self._reader.post(self._recheck_watched)

    def _schedule_recheck(self) -> None:
        # A writer's WAL frames (what inotify hears) land before its commit is visible (the
        # -shm index, updated after the fsync, makes no inotify event): look again after a few
        # short, growing delays, then stop until the next commit is heard.
        with self._recheck_lock:
            if self._recheck_round >= len(_RECHECK_DELAYS) or self._closed:
                self._recheck_pending = False
                return
            delay = _RECHECK_DELAYS[self._recheck_round]
            self._recheck_round += 1
        timer = threading.Timer(delay, self._reader.post, args=(self._recheck_watched,))
        timer.daemon = True
        timer.start()

    def _recheck_watched(self, conn: sqlite3.Connection) -> None:
        """After another process committed: wake the waiters whose stream moved."""
        try:
            self._wake_moved_streams(conn)
        finally:
            self._schedule_recheck()

    def _wake_moved_streams(self, conn: sqlite3.Connection) -> None:
        with self._waiters_lock:
            paths = list(self._waiters)
        changes: Changes = {}
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for path, length, closed in conn.execute(
                f"SELECT path, length, closed FROM streams WHERE path IN ({marks})", chunk
            ):
                with self._waiters_lock:
                    known = self._tails.get(path)
                if known is None:
                    # Its waiter is still reading the tail itself: leave what was seen here
                    # for that read to merge with, rather than waking it for nothing.
                    self._remember_tail(path, int(length), bool(closed))
                elif length > known[0] or (closed and not known[1]):
                    changes[path] = (int(length), bool(closed))
        if changes:
            self._wake(changes)

    def _remember_tail(self, path: str, length: int, closed: bool) -> tuple[int, bool]:
        with self._waiters_lock:
            known = self._tails.pop(path, (length, closed))
            merged = (max(known[0], length), known[1] or closed)
            self._tails[path] = merged
            while len(self._tails) > _WATCHED_TAILS:
                self._tails.popitem(last=False)
            return merged

    async def wait_for_append(self, path: str, *, length: int, timeout: float) -> bool:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._waiters_lock:
            self._waiters.setdefault(path, []).append(waiter)
            # The writer updates a watched stream's tail before waking its waiters, under this
            # lock: a tail read here reflects every commit that will not wake this waiter.
            known = self._tails.get(path)
        try:
            if known is None:
                meta = await self.stream_meta(path)
                if meta is not None:
                    known = self._remember_tail(path, meta.length, meta.closed)
            if known is not None and (known[0] > length or known[1]):
                return True
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            return bool(done)
        finally:
            with self._waiters_lock:
                pending = self._waiters.get(path)
                if pending is not None and waiter in pending:
                    pending.remove(waiter)
                    if not pending:
                        del self._waiters[path]

    # --- writes -------------------------------------------------------------------------------

    async def admit_run(self, header: RunAdmittedEvent, *, owner: str | None = None) -> bool:
        record = record_from_admission(header)
        path = _RUN_PREFIX + header["runId"]
        header_json = dumps(header)

        def work(conn: sqlite3.Connection, changed: Changes) -> bool:
            inserted = conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO NOTHING",
                _record_row(record),
            ).rowcount
            if not inserted:
                return False
            conn.execute(
                "INSERT INTO streams (path, header) VALUES (?, ?) "
                "ON CONFLICT (path) DO UPDATE SET header = coalesce(header, excluded.header)",
                (path, header_json),
            )
            if owner is not None:
                conn.execute("INSERT INTO run_owners VALUES (?, ?)", (header["runId"], owner))
            changed[path] = _tail(conn, path)
            return True

        return await self._writer.submit(work)

    async def create_stream(self, path: str) -> None:
        def work(conn: sqlite3.Connection, changed: Changes) -> None:
            conn.execute(
                "INSERT INTO streams (path) VALUES (?) ON CONFLICT (path) DO NOTHING", (path,)
            )

        await self._writer.submit(work)

    async def append(
        self,
        path: str,
        events: Sequence[dict[str, Any]],
        *,
        expected_seq: int | None = None,
        close: bool = False,
    ) -> list[str]:
        # Serialize before anything moves: an unserializable event fails here, in the caller.
        rows = [(event.get("type"), dumps(event)) for event in events]
        lifecycle = [event for event in events if event.get("type") in LIFECYCLE_EVENT_TYPES]

        def work(conn: sqlite3.Connection, changed: Changes) -> list[str]:
            start = _writable_length(conn, path, expected_seq)
            if rows:
                conn.executemany(
                    "INSERT INTO events (path, seq, type, data) VALUES (?, ?, ?, ?)",
                    [(path, start + i, kind, raw) for i, (kind, raw) in enumerate(rows)],
                )
            conn.execute(
                "UPDATE streams SET length = ?, closed = ? WHERE path = ?",
                (start + len(rows), int(close), path),
            )
            if lifecycle and path.startswith(_RUN_PREFIX):
                _project(conn, path[len(_RUN_PREFIX) :], lifecycle)
            if rows or close:
                changed[path] = (start + len(rows), close)
            return [format_offset(start + i) for i in range(len(rows))]

        return await self._writer.submit(work)

    async def append_once(self, path: str, key: str, event: dict[str, Any]) -> str:
        raw = dumps(event)
        kind = event.get("type")
        lifecycle = [event] if kind in LIFECYCLE_EVENT_TYPES else []

        def work(conn: sqlite3.Connection, changed: Changes) -> str:
            existing = conn.execute(
                "SELECT seq, data FROM events WHERE path = ? AND idempotency_key = ?", (path, key)
            ).fetchone()
            if existing is not None:
                if existing[1] != raw:
                    raise StreamPayloadConflictError(path=path, key=key)
                return format_offset(existing[0])
            start = _writable_length(conn, path, None)
            conn.execute(
                "INSERT INTO events (path, seq, type, idempotency_key, data) VALUES (?,?,?,?,?)",
                (path, start, kind, key, raw),
            )
            conn.execute("UPDATE streams SET length = ? WHERE path = ?", (start + 1, path))
            if lifecycle and path.startswith(_RUN_PREFIX):
                _project(conn, path[len(_RUN_PREFIX) :], lifecycle)
            changed[path] = (start + 1, False)
            return format_offset(start)

        return await self._writer.submit(work)

    async def close_stream(self, path: str) -> None:
        def work(conn: sqlite3.Connection, changed: Changes) -> None:
            if conn.execute(
                "UPDATE streams SET closed = 1 WHERE path = ? AND closed = 0", (path,)
            ).rowcount:
                changed[path] = _tail(conn, path)

        await self._writer.submit(work)

    async def heartbeat(self, owner: str, now_ms: int) -> None:
        def work(conn: sqlite3.Connection, changed: Changes) -> None:
            conn.execute(
                "INSERT INTO owners VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET "
                "heartbeat_ms = max(heartbeat_ms, excluded.heartbeat_ms)",
                (owner, now_ms),
            )

        await self._writer.submit(work)

    async def owner_of(self, run_id: str) -> str | None:
        def work(conn: sqlite3.Connection, changed: Changes) -> str | None:
            row = conn.execute(
                "SELECT owner FROM run_owners WHERE run_id = ?", (run_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._reader.submit(work)

    async def orphaned_runs(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        stale_before = format_timestamp(stale_before_ms)
        if owner is not None:
            sql = (
                "SELECT r.run_id FROM runs r JOIN run_owners o ON o.run_id = r.run_id "
                "WHERE r.status = 'active' AND o.owner = ? AND r.started_at < ?"
            )
            params: tuple[Any, ...] = (owner, stale_before)
        else:
            sql = (
                "SELECT r.run_id FROM runs r LEFT JOIN run_owners o ON o.run_id = r.run_id "
                "LEFT JOIN owners h ON h.owner = o.owner WHERE r.status = 'active' AND ("
                "h.heartbeat_ms < ? OR (h.heartbeat_ms IS NULL AND r.started_at < ?))"
            )
            params = (stale_before_ms, stale_before)

        def work(conn: sqlite3.Connection, changed: Changes) -> list[str]:
            return [str(row[0]) for row in conn.execute(sql, params)]

        return await self._reader.submit(work)

    async def rebuild_records(self) -> int:
        def work(conn: sqlite3.Connection, changed: Changes) -> int:
            conn.execute("DELETE FROM runs")
            headers = {
                path[len(_RUN_PREFIX) :]: loads(header) if header else None
                for path, header in conn.execute(
                    "SELECT path, header FROM streams WHERE path >= 'runs/' AND path < 'runs0'"
                )
            }
            lifecycle: dict[str, list[dict[str, Any]]] = {}
            placeholders = ",".join("?" * len(LIFECYCLE_EVENT_TYPES))
            for path, data in conn.execute(
                f"SELECT path, data FROM events WHERE type IN ({placeholders}) "
                "AND path >= 'runs/' AND path < 'runs0' ORDER BY path, seq",
                tuple(LIFECYCLE_EVENT_TYPES),
            ):
                lifecycle.setdefault(path[len(_RUN_PREFIX) :], []).append(loads(data))
            rows = []
            for run_id, header in headers.items():
                record = fold(header, lifecycle.get(run_id, ()))
                if record is not None:
                    rows.append(_record_row(record))
            conn.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            return len(rows)

        return await self._writer.submit(work)

    # --- reads --------------------------------------------------------------------------------

    async def read(self, path: str, *, offset: str = "-1", limit: int | None = None) -> StreamPage:
        after = None if offset == NOW else parse_offset(offset)
        count = normalize_read_limit(limit)

        def work(conn: sqlite3.Connection, changed: Changes) -> StreamPage:
            meta = conn.execute(
                "SELECT length, closed FROM streams WHERE path = ?", (path,)
            ).fetchone()
            if meta is None:
                return StreamPage(events=[], next_offset="-1", up_to_date=True, closed=False)
            length, closed = meta[0], bool(meta[1])
            if after is None:
                return StreamPage([], format_offset(length - 1), up_to_date=True, closed=closed)
            events = [
                StoredEvent(format_offset(seq), seq, data)
                for seq, data in conn.execute(
                    "SELECT seq, data FROM events WHERE path = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (path, after, count),
                )
            ]
            last = events[-1].seq if events else after
            return StreamPage(
                events, format_offset(last), up_to_date=last >= length - 1, closed=closed
            )

        return await self._reader.submit(work)

    async def stream_meta(self, path: str) -> StreamMeta | None:
        def work(conn: sqlite3.Connection, changed: Changes) -> StreamMeta | None:
            row = conn.execute(
                "SELECT length, closed FROM streams WHERE path = ?", (path,)
            ).fetchone()
            if row is None:
                return None
            return StreamMeta(
                next_offset=format_offset(row[0] - 1), length=row[0], closed=bool(row[1])
            )

        return await self._reader.submit(work)

    async def read_header(self, run_id: str) -> RunAdmittedEvent | None:
        def work(conn: sqlite3.Connection, changed: Changes) -> RunAdmittedEvent | None:
            row = conn.execute(
                "SELECT header FROM streams WHERE path = ?", (_RUN_PREFIX + run_id,)
            ).fetchone()
            return loads(row[0]) if row is not None and row[0] is not None else None

        return await self._reader.submit(work)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def work(conn: sqlite3.Connection, changed: Changes) -> RunRecord | None:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return _record_from_row(row) if row is not None else None

        return await self._reader.submit(work)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        count = normalize_limit(limit)
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if workflow_name is not None:
            clauses.append("workflow_name = ?")
            params.append(workflow_name)
        position = decode_cursor(cursor)
        if position is not None:
            clauses.append("(started_at < ? OR (started_at = ? AND run_id < ?))")
            params.extend([position[0], position[0], position[1]])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM runs {where} ORDER BY started_at DESC, run_id DESC LIMIT ?"
        params.append(count + 1)

        def work(conn: sqlite3.Connection, changed: Changes) -> RunPage:
            rows = conn.execute(sql, params).fetchall()
            pointers = [_record_from_row(row).pointer() for row in rows[:count]]
            more = len(rows) > count
            return RunPage(pointers, encode_cursor(pointers[-1]) if more and pointers else None)

        return await self._reader.submit(work)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        self._writer.stop()
        if self._reader is not self._writer:
            self._reader.stop()


def _resolve_waiters(futures: list[asyncio.Future[bool]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(True)


def _tail(conn: sqlite3.Connection, path: str) -> tuple[int, bool]:
    length, closed = conn.execute(
        "SELECT length, closed FROM streams WHERE path = ?", (path,)
    ).fetchone()
    return int(length), bool(closed)


def _writable_length(conn: sqlite3.Connection, path: str, expected_seq: int | None) -> int:
    row = conn.execute("SELECT length, closed FROM streams WHERE path = ?", (path,)).fetchone()
    if row is None:
        raise StreamMissingError(path=path)
    length, closed = row
    if closed:
        raise StreamClosedError(path=path)
    if expected_seq is not None and expected_seq != length:
        raise StreamConflictError(path=path, expected=expected_seq, actual=length)
    return int(length)


def _project(conn: sqlite3.Connection, run_id: str, events: Iterable[dict[str, Any]]) -> None:
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    before = _record_from_row(row) if row is not None else None
    after = before
    for event in events:
        after = apply_event(after, event)
    if after is not None and after != before:
        conn.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", _record_row(after)
        )


def _optional_json(value: Any) -> str | None:
    return None if value is UNSET or value is None else dumps(value)


def _record_row(record: RunRecord) -> tuple[Any, ...]:
    return (
        record.run_id,
        record.workflow_name,
        record.status,
        record.started_at,
        None if record.input is UNSET else dumps(record.input),
        _optional_json(record.trace_carrier),
        record.ended_at,
        None if record.is_error is None else int(record.is_error),
        record.duration_ms,
        None if record.result is UNSET else dumps(record.result),
        _optional_json(record.error),
    )


def _record_from_row(row: Sequence[Any]) -> RunRecord:
    (run_id, workflow, status, started, inp, carrier, ended, is_error, duration, result, error) = (
        row
    )
    return RunRecord(
        run_id=run_id,
        workflow_name=workflow,
        status=status,
        started_at=started,
        input=UNSET if inp is None else loads(inp),
        trace_carrier=None if carrier is None else loads(carrier),
        ended_at=ended,
        is_error=None if is_error is None else bool(is_error),
        duration_ms=duration,
        result=UNSET if result is None else loads(result),
        error=None if error is None else loads(error),
    )
