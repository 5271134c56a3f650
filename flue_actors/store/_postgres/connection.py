"""Connections to the store's database: a loop-bound asyncpg pool, opened on first use, and the
one error callers see when the server cannot be reached (with every password masked)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

from ...errors import RunStoreUnavailableError
from .schema import ensure_schema
from .urls import redact_text

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]

__all__ = ["Database", "StoreConnectionError"]

# The driver's ways of saying "the server went away" (or is not back yet).
_CONNECTION_ERRORS: Final = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
# A connection the server terminated while it sat idle in the pool can surface as a protocol
# state error on its next use (MagicStack/asyncpg#1069): it is broken the same way.
_BROKEN_CONNECTION: Final = (*_CONNECTION_ERRORS, asyncpg.InternalClientError)
_UNREACHABLE: Final = (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError)


class StoreConnectionError(RunStoreUnavailableError, ConnectionError):
    """The PostgreSQL server could not be reached or dropped the connection mid-request.

    Whatever was being written may or may not have committed; appends are fenced by
    ``expected_seq``, so retrying one can never duplicate it. ``str(error)`` says why (it never
    shows a password); HTTP callers get ``run_store_unavailable`` (503) without that reason.
    """


async def _keep_session(conn: Connection) -> None:
    """Released connections need no reset query (a round trip per request): the store never
    changes session state on pooled connections, and the pool still rolls back any transaction
    left open."""


class Database:
    """The pool of one store. ``url`` is only used to mask its secrets in messages."""

    def __init__(
        self,
        dsn: str,
        *,
        url: str,
        schema: str,
        location: str,
        min_size: int,
        max_size: int,
        timeout: float,
    ) -> None:
        self._dsn = dsn
        self._url = url
        self._schema = schema
        self.location = location
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock = asyncio.Lock()
        self.closed = False

    def _error(self, what: str, error: BaseException) -> StoreConnectionError:
        reason = redact_text(f"{type(error).__name__}: {error}", self._url)
        return StoreConnectionError(f"{what} the PostgreSQL store at {self.location}: {reason}")

    async def connect(self) -> Connection:
        """A connection of its own, outside the pool (for LISTEN)."""
        try:
            return await asyncpg.connect(self._dsn, timeout=self._timeout)
        except _UNREACHABLE as error:
            raise self._error("Could not reach", error) from None

    async def pool(self) -> Pool:
        """The pool, opened (and the schema checked or created) on first use."""
        pool = self._pool
        if pool is None:
            async with self._open_lock:
                if self._pool is None:
                    self._pool = await self._open()
                    self._loop = asyncio.get_running_loop()
                pool = self._pool
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "A PostgresEventStore is bound to the event loop it was first used on; "
                "open another store for this loop."
            )
        return pool

    async def _open(self) -> Pool:
        if self.closed:
            raise RuntimeError("The PostgreSQL store is closed.")
        try:
            pool: Pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                reset=_keep_session,
            )
        except _UNREACHABLE as error:
            raise self._error("Could not reach", error) from None
        try:
            async with pool.acquire() as conn:
                await ensure_schema(conn, self._schema, location=self.location)
        except BaseException:
            pool.terminate()
            raise
        return pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; a dropped one becomes :class:`StoreConnectionError`."""
        pool = await self.pool()
        try:
            async with pool.acquire() as conn:
                try:
                    yield conn
                except _BROKEN_CONNECTION:
                    # Never hand a broken connection back: the pool opens a fresh one instead.
                    # (One the server dropped has already left the pool on its own.)
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                    raise
        except _BROKEN_CONNECTION as error:
            raise self._error("Lost the connection to", error) from error

    async def close(self) -> None:
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
