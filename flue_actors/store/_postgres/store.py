"""The cluster log: PostgreSQL through an asyncpg pool, live tails through LISTEN/NOTIFY.

A store is bound to the event loop it is first used on (asyncpg pools are loop-bound): open, use
and close it from that one loop; any number of coroutines on it may call it concurrently. Other
processes and nodes open their own store on the same database and schema.

Writes are fenced by the stream row: every append updates it with a guard on ``length`` (and
``closed``), so two writers with the same ``expected_seq`` cannot both succeed, and a retry of an
append whose acknowledgement was lost (the connection dropped after the commit) gets
``StreamConflictError`` instead of writing twice. Appends without run-lifecycle events are one
statement; lifecycle events also fold the run record with :func:`flue_actors._records.apply_event`
in the same transaction, under the stream row's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from ..._clock import format_timestamp
from ..._events import LIFECYCLE_EVENT_TYPES, RunAdmittedEvent
from ..._jsonvalue import dumps, loads
from ..._records import (
    RunPage,
    RunRecord,
    RunStatus,
    apply_event,
    fold,
    record_from_admission,
)
from ...errors import StreamClosedError, StreamConflictError, StreamMissingError
from .._base import StoredEvent, StreamMeta, StreamPage, normalize_read_limit
from .._idempotency import KeyedRun, keyed_claim
from .._listing import run_listing
from .._offsets import NOW, format_offset, parse_offset
from .codec import RUN_COLUMNS, from_db, notify_key, record_from_row, record_row, to_db
from .connection import Database, StoreConnectionError
from .notify import StreamNotifier
from .schema import SCHEMA_VERSION, quote_schema
from .sql import Statements
from .urls import is_postgres_url, redact_url, split_schema

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "PostgresEventStore", "StoreConnectionError"]

DEFAULT_SCHEMA: Final = "flue"
_RUN_PREFIX: Final = "runs/"
_RETRIES: Final = 3


def _event_type(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    return to_db(kind) if isinstance(kind, str) else None


class PostgresEventStore:
    """The PostgreSQL store. ``url`` is ``postgresql://`` or ``postgres://``; the tables live in
    ``schema`` (argument, else the URL's ``?schema=``, else ``flue``), created on first use."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"Not a PostgreSQL URL: {redact_url(url)}")
        dsn, url_schema = split_schema(url)
        self.schema = schema if schema is not None else (url_schema or DEFAULT_SCHEMA)
        quoted = quote_schema(self.schema)
        self.location = f"{redact_url(dsn)} (schema {self.schema})"
        self._sql = Statements(quoted, f"flue_{self.schema}"[:63])
        self._db = Database(
            dsn,
            url=url,
            schema=self.schema,
            location=self.location,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
        )
        self._connection = self._db.connection
        self._notifier = StreamNotifier(self._db.connect, self._sql.channel)

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.location!r})"

    async def open(self) -> None:
        """Connect and check (or create) the schema now rather than on first use."""
        await self._db.pool()

    # --- notification ---------------------------------------------------------------------------

    async def wait_for_append(self, path: str, *, length: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = notify_key(to_db(path))
        first = True
        while True:
            waiter = self._notifier.register(key)
            try:
                try:
                    # Listening and registered before looking: an append after the look wakes us.
                    await self._notifier.listen()
                    meta = await self._watch(path, deadline - loop.time())
                except StoreConnectionError:
                    if first:
                        raise
                    # The server is restarting: try again shortly, until the deadline.
                    await asyncio.sleep(min(0.25, max(deadline - loop.time(), 0)))
                    if loop.time() >= deadline:
                        return False
                    continue
                first = False
                if meta is not None and (meta.length > length or meta.closed):
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                done, _ = await asyncio.wait({waiter}, timeout=remaining)
                if not done:
                    return False
            finally:
                self._notifier.unregister(key, waiter)

    async def _watch(self, path: str, seconds: float) -> StreamMeta | None:
        """Mark the stream watched for ``seconds`` (so appends notify) and return its state."""
        async with self._connection() as conn:
            row = await conn.fetchrow(self._sql.watch, to_db(path), max(seconds, 0.0) + 1.0)
        return None if row is None else _meta(row)

    # --- writes ---------------------------------------------------------------------------------

    async def admit_run(self, header: RunAdmittedEvent, *, owner: str | None = None) -> bool:
        [admitted] = await self.admit_runs([header], owner=owner)
        return admitted

    async def admit_runs(
        self, headers: Sequence[RunAdmittedEvent], *, owner: str | None = None
    ) -> list[bool]:
        owner_db = None if owner is None else to_db(owner)
        prepared = []
        for header in headers:
            path = to_db(_RUN_PREFIX + header["runId"])
            row = record_row(record_from_admission(header))
            claim = keyed_claim(header)
            keyed = () if claim is None else (to_db(claim[0]), to_db(claim[1]), claim[2])
            prepared.append((row, path, dumps(header), keyed))
        admitted = []
        # One transaction for the batch (one commit), and no transaction of its own for one.
        async with self._connection() as conn, contextlib.AsyncExitStack() as stack:
            if len(prepared) > 1:
                await stack.enter_async_context(conn.transaction())
            for row, path, header_json, keyed in prepared:
                statement = self._sql.admit_keyed if keyed else self._sql.admit
                count = await conn.fetchval(
                    statement, *row, path, header_json, notify_key(path), owner_db, *keyed
                )
                admitted.append(bool(count))
        for (_, path, _, _), was_admitted in zip(prepared, admitted, strict=True):
            if was_admitted:
                self._notifier.wake(notify_key(path))
        return admitted

    async def keyed_runs(self, workflow_name: str, keys: Sequence[str]) -> dict[str, KeyedRun]:
        wanted = [to_db(key) for key in dict.fromkeys(keys)]
        if not wanted:
            return {}
        async with self._connection() as conn:
            rows = await conn.fetch(self._sql.keyed_runs, to_db(workflow_name), wanted)
        return {
            from_db(row["key"]): KeyedRun(from_db(row["run_id"]), row["fingerprint"])
            for row in rows
        }

    async def heartbeat(self, owner: str, now_ms: int) -> None:
        async with self._connection() as conn:
            await conn.execute(self._sql.heartbeat, to_db(owner), now_ms)

    async def owner_of(self, run_id: str) -> str | None:
        async with self._connection() as conn:
            owner = await conn.fetchval(self._sql.owner_of, to_db(run_id))
        return None if owner is None else from_db(owner)

    async def claim_run(self, run_id: str, owner: str, *, previous: str | None) -> bool:
        async with self._connection() as conn:
            if previous is None:
                status = await conn.execute(self._sql.claim_unowned, to_db(run_id), to_db(owner))
            else:
                status = await conn.execute(
                    self._sql.claim_run, to_db(run_id), to_db(owner), to_db(previous)
                )
        return str(status).endswith(" 1")

    async def orphaned_runs(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        stale_before = to_db(format_timestamp(stale_before_ms))
        async with self._connection() as conn:
            if owner is not None:
                rows = await conn.fetch(self._sql.orphans_of_owner, to_db(owner), stale_before)
            else:
                rows = await conn.fetch(self._sql.orphans, stale_before_ms, stale_before)
        return [from_db(row[0]) for row in rows]

    async def prune_owners(self, *, stale_before_ms: int, owner: str | None = None) -> list[str]:
        owner_db = None if owner is None else to_db(owner)
        async with self._connection() as conn:
            rows = await conn.fetch(self._sql.prune_owners, stale_before_ms, owner_db)
        return sorted(from_db(row[0]) for row in rows)

    async def create_stream(self, path: str) -> None:
        async with self._connection() as conn:
            db_path = to_db(path)
            await conn.execute(self._sql.create, db_path, notify_key(db_path))

    async def append(
        self,
        path: str,
        events: Sequence[dict[str, Any]],
        *,
        expected_seq: int | None = None,
        close: bool = False,
    ) -> list[str]:
        # Serialize before anything moves: an unserializable event fails here, in the caller.
        datas = [dumps(event) for event in events]
        types = [_event_type(event) for event in events]
        db_path = to_db(path)
        key = notify_key(db_path)
        lifecycle = path.startswith(_RUN_PREFIX) and any(
            event.get("type") in LIFECYCLE_EVENT_TYPES for event in events
        )
        async with self._connection() as conn:
            if lifecycle:
                start = await self._write_locked(
                    conn, path, datas, types, events, expected_seq, close
                )
            else:
                start = await self._append_fast(conn, db_path, datas, types, expected_seq, close)
        if events or close:
            self._notifier.wake(key)
        return [format_offset(start + i) for i in range(len(datas))]

    async def _append_fast(
        self,
        conn: Conn,
        db_path: str,
        datas: list[str],
        types: list[str | None],
        expected_seq: int | None,
        close: bool,
    ) -> int:
        for _ in range(_RETRIES):
            start = await conn.fetchval(
                self._sql.append, db_path, datas, expected_seq, close, types, notify_key(db_path)
            )
            if start is not None:
                return int(start)
            # Refused: say why (the stream cannot become writable again, so this is stable).
            row = await conn.fetchrow(self._sql.meta, db_path)
            _check_writable(from_db(db_path), row, expected_seq)
        raise RuntimeError(f"append to {from_db(db_path)!r} kept being refused")  # pragma: no cover

    async def _write_locked(
        self,
        conn: Conn,
        path: str,
        datas: list[str],
        types: list[str | None],
        events: Sequence[dict[str, Any]],
        expected_seq: int | None,
        close: bool,
    ) -> int:
        """Append under the stream row's lock, folding the run record in the same transaction."""
        db_path = to_db(path)
        async with conn.transaction():
            row = await conn.fetchrow(self._sql.lock, db_path)
            start = _check_writable(path, row, expected_seq)
            before = after = await self._record(conn, path)
            for event in events:
                after = apply_event(after, event)
            changed = after is not None and after != before
            record = record_row(after) if changed and after is not None else (None,) * 11
            await conn.execute(
                self._sql.write_locked,
                db_path,
                start,
                datas,
                types,
                close,
                notify_key(db_path),
                *record,
                changed,
            )
            return start

    async def _record(self, conn: Conn, path: str) -> RunRecord | None:
        if not path.startswith(_RUN_PREFIX):
            return None
        row = await conn.fetchrow(self._sql.get_run, to_db(path[len(_RUN_PREFIX) :]))
        return record_from_row(row) if row is not None else None

    async def close_stream(self, path: str) -> None:
        db_path = to_db(path)
        async with self._connection() as conn:
            closed = await conn.fetch(self._sql.close, db_path, notify_key(db_path))
        if closed:
            self._notifier.wake(notify_key(db_path))

    async def rebuild_records(self) -> int:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._sql.rebuild_lock)
            await conn.execute(self._sql.rebuild_clear)
            headers = {
                row["path"]: loads(row["header"]) if row["header"] is not None else None
                for row in await conn.fetch(self._sql.rebuild_headers)
            }
            lifecycle: dict[str, list[dict[str, Any]]] = {}
            for row in await conn.fetch(self._sql.rebuild_events):
                lifecycle.setdefault(row["path"], []).append(loads(row["data"]))
            rows = []
            for db_path, header in headers.items():
                record = fold(header, lifecycle.get(db_path, ()))
                if record is not None:
                    rows.append(record_row(record))
            if rows:
                await conn.copy_records_to_table(
                    "runs", schema_name=self.schema, columns=RUN_COLUMNS, records=rows
                )
            return len(rows)

    # --- reads ----------------------------------------------------------------------------------

    async def read(self, path: str, *, offset: str = "-1", limit: int | None = None) -> StreamPage:
        after = None if offset == NOW else parse_offset(offset)
        count = normalize_read_limit(limit)
        db_path = to_db(path)
        async with self._connection() as conn:
            if after is None:
                row = await conn.fetchrow(self._sql.meta, db_path)
                rows = [] if row is None else [row]
            else:
                rows = await conn.fetch(self._sql.read, db_path, after, count)
        if not rows:
            return StreamPage(events=[], next_offset="-1", up_to_date=True, closed=False)
        length, closed = int(rows[0]["length"]), bool(rows[0]["closed"])
        if after is None:
            return StreamPage([], format_offset(length - 1), up_to_date=True, closed=closed)
        events = [
            StoredEvent(format_offset(row["seq"]), row["seq"], row["data"])
            for row in rows
            if row["seq"] is not None
        ]
        last = events[-1].seq if events else after
        return StreamPage(events, format_offset(last), up_to_date=last >= length - 1, closed=closed)

    async def stream_meta(self, path: str) -> StreamMeta | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._sql.meta, to_db(path))
        return None if row is None else _meta(row)

    async def read_header(self, run_id: str) -> RunAdmittedEvent | None:
        async with self._connection() as conn:
            header = await conn.fetchval(self._sql.header, to_db(_RUN_PREFIX + run_id))
        return loads(header) if header is not None else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._sql.get_run, to_db(run_id))
        return record_from_row(row) if row is not None else None

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        listing = run_listing(
            f"{self._sql.schema}.runs",
            marker="$",
            status=status,
            workflow_name=workflow_name,
            limit=limit,
            cursor=cursor,
            encode=to_db,
        )
        async with self._connection() as conn:
            rows = await conn.fetch(listing.sql, *listing.params)
        return listing.page([record_from_row(row) for row in rows])

    async def close(self) -> None:
        await self._notifier.close()
        await self._db.close()


def _meta(row: asyncpg.Record) -> StreamMeta:
    length = int(row["length"])
    return StreamMeta(next_offset=format_offset(length - 1), length=length, closed=row["closed"])


def _check_writable(path: str, row: asyncpg.Record | None, expected_seq: int | None) -> int:
    """The stream's length if an append may go ahead, else the error that says why not."""
    if row is None:
        raise StreamMissingError(path=path)
    if row["closed"]:
        raise StreamClosedError(path=path)
    length = int(row["length"])
    if expected_seq is not None and expected_seq != length:
        raise StreamConflictError(path=path, expected=expected_seq, actual=length)
    return length
