"""Serving the gateway with uvicorn, protected and stoppable.

What a bare uvicorn does not do, and a gateway facing the network must:

- **Read timeout.** A connection must deliver a request head within ``read_timeout`` seconds of
  opening (or of starting the head), and a request body must not stall for longer than that
  between chunks. A head that is late gets ``408`` and the connection is closed; a stalled body
  closes the connection (the handler sees the client leave). Idle connections that never ask
  anything are therefore closed too, instead of holding a file descriptor forever.
- **Idle timeout.** A keep-alive connection idle for ``keep_alive`` seconds after a response is
  closed (uvicorn's ``timeout_keep_alive``).
- **Connection limit.** While ``limit_connections`` connections are open, a new request is
  answered ``503`` at once (uvicorn's ``limit_concurrency``), rather than queueing behind them.
  The soft limit on open files is raised (up to the hard limit) to leave room for it.
- **Graceful stop within a bound.** On SIGTERM/SIGINT the listening socket closes, the gateway
  begins draining (``draining.py``: waits are answered, new invocations get 503), open requests
  get the rest of ``graceful_seconds`` to finish (then they are cancelled), and runs hosted in
  this process get what remains of it before they are stopped, left to be resumed by replay
  (``recovery="resume"``) or ended ``run_interrupted`` (``recovery="fail"``), and the
  process's lease is released. So the process exits within ``graceful_seconds`` plus the time
  to record those interruptions (one fenced append per run). A second signal makes uvicorn exit
  at once, skipping all of this: runs hosted here are then left to the lease sweep of whichever
  process serves next, as after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .._runtime import Runtime
from .._runtime.heap import settle_loaded
from ._draining import Draining

__all__ = ["ServeOptions", "serve_app"]

logger = logging.getLogger("flue_actors.gateway")
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
# File descriptors kept beyond the connection limit: the store, inotify, Ray, logs.
_SPARE_FILES = 256


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    keep_alive: float = 5.0
    read_timeout: float = 10.0
    limit_connections: int = 1000
    backlog: int = 2048
    graceful_seconds: float = 10.0


class _ProtectedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the read timeout. ``read_timeout`` is set on a
    subclass made per server (uvicorn builds the protocol with its own arguments)."""

    read_timeout: float = 10.0
    _read_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # No request is being served: its head never came (in full).
            self.transport.write(_TIMED_OUT)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm()  # from here on, the body must not stall

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a body nobody will read (answered already) needs no deadline

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The keep-alive timeout (uvicorn's) now governs the idle connection.
        self._disarm()


class _GatewayServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        draining: Draining,
        graceful_seconds: float,
        on_started: Callable[[list[str]], None] | None,
    ):
        super().__init__(config)
        self._draining = draining
        self._graceful_seconds = graceful_seconds
        self._on_started = on_started
        self.ended_at_start: list[str] = []
        self.stop_deadline: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started(self.ended_at_start)  # listening from here on

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn waits for open requests: answer the waiting ones now.
        self.stop_deadline = asyncio.get_running_loop().time() + self._graceful_seconds
        self._draining.begin()
        await super().shutdown(sockets)


def _make_room_for(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logger.warning("could not raise the open-file limit to %d: %s", target, error)
            target = soft
        if target < wanted:
            logger.warning(
                "open-file limit %d leaves little room for %d connections", target, connections
            )


def serve_app(
    app: FastAPI,
    runtime: Runtime,
    options: ServeOptions,
    *,
    on_started: Callable[[list[str]], None] | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve ``app`` (the gateway over ``runtime``) until SIGTERM/SIGINT, then stop as the
    module describes. ``on_started(ended_run_ids)`` is called once the socket listens, with the
    runs the first lease sweep ended. ``sockets``: listen on these (bound by a parent that
    shares them among workers) rather than bind ``options.host``/``options.port``."""
    draining: Draining = app.state.draining
    protocol = type(
        "ProtectedProtocol", (_ProtectedProtocol,), {"read_timeout": options.read_timeout}
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        http=protocol,
        log_level="warning",
        timeout_keep_alive=max(1, round(options.keep_alive)),
        limit_concurrency=options.limit_connections,
        backlog=options.backlog,
        timeout_graceful_shutdown=max(1, round(options.graceful_seconds)),
    )
    server = _GatewayServer(config, draining, options.graceful_seconds, on_started)

    async def started() -> None:
        # In the server's own event loop: a PostgreSQL store belongs to the loop it first runs
        # on, so nothing may touch it before uvicorn's loop starts.
        server.ended_at_start = await runtime.serve()
        # What the backend loaded as it started (Ray, as it connects) lives as long as the
        # server: out of the collector's passes, as the rest of the settled heap is.
        settle_loaded()

    async def stopped() -> None:
        loop = asyncio.get_running_loop()
        deadline = server.stop_deadline
        grace = options.graceful_seconds if deadline is None else deadline - loop.time()
        grace = max(0.0, grace)
        await runtime.close(grace_seconds=grace)

    app.router.add_event_handler("startup", started)
    app.router.add_event_handler("shutdown", stopped)
    _make_room_for(options.limit_connections)
    server.run(sockets=sockets)
