"""Live tails across processes: one LISTEN connection per store, waiters keyed by stream.

Every append publishes the stream's path with ``pg_notify`` inside its own transaction, so the
notification is delivered exactly when the events become visible, to every process listening on
the store's channel. A waiter registers its future *before* it looks at the stream, so an append
that lands between the look and the wait still wakes it; a woken waiter looks again, so a stale or
foreign notification costs one query, never a wrong answer. If the LISTEN connection drops, every
waiter is woken (notifications may have been missed meanwhile) and the next wait reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    AnyConnection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

__all__ = ["StreamNotifier"]


class StreamNotifier:
    """Owns the LISTEN connection; ``connect`` opens a new connection to the same database."""

    def __init__(self, connect: Callable[[], Awaitable[Connection]], channel: str) -> None:
        self.channel = channel
        self._connect = connect
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def listen(self) -> None:
        """Make sure notifications are being received (connecting if needed)."""
        if self.listening:
            return
        async with self._lock:
            if self.listening:
                return
            if self._closed:
                raise RuntimeError("The PostgreSQL store is closed.")
            conn = await self._connect()
            try:
                await conn.add_listener(self.channel, self._on_notification)
            except BaseException:
                await conn.close()
                raise
            conn.add_termination_listener(self._on_termination)
            self._conn = conn

    def register(self, key: str) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        return waiter

    def unregister(self, key: str, waiter: asyncio.Future[None]) -> None:
        pending = self._waiters.get(key)
        if pending is not None and waiter in pending:
            pending.remove(waiter)
            if not pending:
                del self._waiters[key]

    def wake(self, key: str) -> None:
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(None)

    def wake_all(self) -> None:
        for key in list(self._waiters):
            self.wake(key)

    def _on_notification(
        self, conn: AnyConnection, pid: int, channel: str, payload: object
    ) -> None:
        if isinstance(payload, str):
            self.wake(payload)

    def _on_termination(self, conn: AnyConnection) -> None:
        if conn is self._conn:
            self._conn = None
        # Whatever was published while we were not listening is lost: every waiter looks again.
        self.wake_all()

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
        self.wake_all()
