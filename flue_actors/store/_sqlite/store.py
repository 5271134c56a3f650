"""The embedded log: SQLite in WAL mode, one file (or ``:memory:`` for tests).

All writes go through one writer thread that commits whatever has queued up in one transaction
(``worker.py``), so ``synchronous=FULL`` (an fsync per commit: an acknowledged event survives
power loss) stays affordable under load. Reads use their own connection and thread, so they never
wait for an fsync; an in-memory database has one connection, so there one thread does both.
Live readers are woken by the writer, and by inotify for other processes' commits (``live.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

from ..._clock import format_timestamp
from ..._events import LIFECYCLE_EVENT_TYPES, RunAdmittedEvent
from ..._jsonvalue import dumps, loads
from ..._records import (
    RunPage,
    RunRecord,
    RunStatus,
    fold,
    record_from_admission,
)
from .._base import StoredEvent, StreamMeta, StreamPage, normalize_read_limit
from .._idempotency import KeyedRun, keyed_claim
from .._listing import run_listing
from .._offsets import NOW, format_offset, parse_offset
from .inotify import ForeignCommitWatcher
from .live import LiveTails
from .rows import project, record_from_row, record_row, refusal, tail
from .schema import connect, ensure_schema
from .worker import Changes, DatabaseThread

__all__ = ["SqliteEventStore"]

_RUN_PREFIX: Final = "runs/"


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
        writer_conn = connect(self.location, synchronous)
        try:
            ensure_schema(writer_conn, self.location)
        except BaseException:
            writer_conn.close()
            raise
        self._writer = DatabaseThread(
            writer_conn, transactional=True, on_commit=self._wake, name="flue-sqlite-writer"
        )
        self._writer.start()
        if self.location == ":memory:":
            self._reader = self._writer
        else:
            self._reader = DatabaseThread(
                connect(self.location, synchronous),
                transactional=False,
                on_commit=self._wake,
                name="flue-sqlite-reader",
            )
            self._reader.start()
        # Re-checks after another process's commit run on the writer's connection, whose
        # data_version tells this process's own commits from others'.
        self._live = LiveTails(self._writer.post)
        if self.location != ":memory:":
            # Other processes (Ray hosts) writing to the same file wake this process's readers.
            self._live.watch(ForeignCommitWatcher(Path(self.location), self._live.foreign_commit))

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.location!r})"

    # --- notification -------------------------------------------------------------------------

    def _wake(self, changes: Changes) -> None:
        self._live.wake(changes)

    async def wait_for_append(self, path: str, *, length: int, timeout: float) -> bool:
        waiter, known = self._live.register(path)
        try:
            if known is None:
                meta = await self.stream_meta(path)
                if meta is not None:
                    known = self._live.remember(path, meta.length, meta.closed)
            if known is not None and (known[0] > length or known[1]):
                return True
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            return bool(done)
        finally:
            self._live.unregister(path, waiter)

    # --- writes -------------------------------------------------------------------------------

    async def admit_run(self, header: RunAdmittedEvent, *, owner: str | None = None) -> bool:
        [admitted] = await self.admit_runs([header], owner=owner)
        return admitted

    async def admit_runs(
        self, headers: Sequence[RunAdmittedEvent], *, owner: str | None = None
    ) -> list[bool]:
        # Rows and JSON are made here, in the caller, so the writer thread only inserts.
        rows = [
            (record_row(record_from_admission(header)), _RUN_PREFIX + header["runId"], header)
            for header in headers
        ]
        prepared = [
            (row, path, header["runId"], dumps(header), keyed_claim(header))
            for row, path, header in rows
        ]

        def work(conn: sqlite3.Connection, changed: Changes) -> list[bool]:
            admitted = []
            for row, path, run_id, header_json, claim in prepared:
                # The key first: a key already claimed admits nothing (one writer thread, so
                # no other admission can come between the claim and the run it names).
                if claim is not None and not (
                    conn.execute(
                        "INSERT INTO run_keys VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                        (claim[0], claim[1], run_id, claim[2]),
                    ).rowcount
                ):
                    admitted.append(False)
                    continue
                inserted = conn.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (run_id) DO NOTHING",
                    row,
                ).rowcount
                if not inserted:
                    admitted.append(False)
                    continue
                length, closed = conn.execute(
                    "INSERT INTO streams (path, header) VALUES (?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET header = coalesce(header, excluded.header) "
                    "RETURNING length, closed",
                    (path, header_json),
                ).fetchone()
                if owner is not None:
                    conn.execute("INSERT INTO run_owners VALUES (?, ?)", (run_id, owner))
                changed[path] = (int(length), bool(closed))
                admitted.append(True)
            return admitted

        return await self._writer.submit(work)

    async def keyed_runs(self, workflow_name: str, keys: Sequence[str]) -> dict[str, KeyedRun]:
        wanted = list(dict.fromkeys(keys))

        def work(conn: sqlite3.Connection, changed: Changes) -> dict[str, KeyedRun]:
            found: dict[str, KeyedRun] = {}
            # In slices: SQLite binds at most 32,766 parameters per statement.
            for at in range(0, len(wanted), 500):
                part = wanted[at : at + 500]
                marks = ",".join("?" * len(part))
                for key, run_id, fingerprint in conn.execute(
                    "SELECT key, run_id, fingerprint FROM run_keys "
                    f"WHERE workflow_name = ? AND key IN ({marks})",
                    (workflow_name, *part),
                ):
                    found[str(key)] = KeyedRun(str(run_id), str(fingerprint))
            return found

        return await self._reader.submit(work)

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
            # The check and the new length in one statement; only a refused append looks again,
            # to say why. Every run makes two or three appends.
            found = conn.execute(
                "UPDATE streams SET length = length + ?, closed = ? WHERE path = ? AND NOT closed "
                "AND (? IS NULL OR length = ?) RETURNING length, header IS NOT NULL",
                (len(rows), int(close), path, expected_seq, expected_seq),
            ).fetchone()
            if found is None:
                raise refusal(conn, path, expected_seq)
            end, admitted = found
            start = end - len(rows)
            if rows:
                conn.executemany(
                    "INSERT INTO events (path, seq, type, data) VALUES (?, ?, ?, ?)",
                    [(path, start + i, kind, raw) for i, (kind, raw) in enumerate(rows)],
                )
            if lifecycle and path.startswith(_RUN_PREFIX):
                project(conn, path[len(_RUN_PREFIX) :], lifecycle, admitted=bool(admitted))
            if rows or close:
                changed[path] = (end, close)
            return [format_offset(start + i) for i in range(len(rows))]

        return await self._writer.submit(work)

    async def close_stream(self, path: str) -> None:
        def work(conn: sqlite3.Connection, changed: Changes) -> None:
            if conn.execute(
                "UPDATE streams SET closed = 1 WHERE path = ? AND closed = 0", (path,)
            ).rowcount:
                changed[path] = tail(conn, path)

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

    async def claim_run(self, run_id: str, owner: str, *, previous: str | None) -> bool:
        def work(conn: sqlite3.Connection, changed: Changes) -> bool:
            if previous is None:
                cursor = conn.execute(
                    "INSERT INTO run_owners VALUES (?, ?) ON CONFLICT (run_id) DO NOTHING",
                    (run_id, owner),
                )
            else:
                cursor = conn.execute(
                    "UPDATE run_owners SET owner = ? WHERE run_id = ? AND owner = ?",
                    (owner, run_id, previous),
                )
            return cursor.rowcount == 1

        return await self._writer.submit(work)

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

    async def prune_owners(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        def work(conn: sqlite3.Connection, changed: Changes) -> list[str]:
            rows = conn.execute(
                "DELETE FROM owners WHERE heartbeat_ms < ? AND (? IS NULL OR owner = ?) "
                "AND NOT EXISTS (SELECT 1 FROM run_owners o JOIN runs r ON r.run_id = o.run_id "
                "WHERE o.owner = owners.owner AND r.status = 'active') RETURNING owner",
                (stale_before_ms, owner, owner),
            ).fetchall()
            return sorted(str(row[0]) for row in rows)

        return await self._writer.submit(work)

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
                    rows.append(record_row(record))
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
            return record_from_row(row) if row is not None else None

        return await self._reader.submit(work)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        listing = run_listing(
            "runs",
            marker="?",
            status=status,
            workflow_name=workflow_name,
            limit=limit,
            cursor=cursor,
        )

        def work(conn: sqlite3.Connection, changed: Changes) -> RunPage:
            rows = conn.execute(listing.sql, listing.params).fetchall()
            return listing.page([record_from_row(row) for row in rows])

        return await self._reader.submit(work)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._live.close()
        self._writer.stop()
        if self._reader is not self._writer:
            self._reader.stop()
