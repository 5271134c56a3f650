"""Draining: what the gateway does once its server has been asked to stop (SIGTERM).

A server stops only when its open requests have been answered, and some of the gateway's
requests wait on runs that may take arbitrarily long (``?wait=result``, long-poll, SSE). So the
server begins draining before it waits for them: new invocations are refused (503
``runtime_unavailable``), ``?wait=result`` answers ``202 {"runId"}`` (the run goes on or is
recovered; read it later at ``/runs/{runId}``), a long-poll answers 204 with where the stream
stands, and an SSE stream ends after its last frame. None of it changes any run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Draining", "unless_draining"]

T = TypeVar("T")


class Draining:
    def __init__(self) -> None:
        self._started = asyncio.Event()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def begin(self) -> None:
        """Start draining (idempotent). Call it in the server's event loop."""
        self._started.set()

    async def wait(self) -> None:
        await self._started.wait()


async def unless_draining(draining: Draining, work: Awaitable[T]) -> tuple[bool, T | None]:
    """``(True, result)`` of ``work``, or ``(False, None)`` if draining starts first (``work``
    is then cancelled). Exceptions from ``work`` propagate."""
    if draining.started:
        if asyncio.iscoroutine(work):
            work.close()
        return False, None
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return True, task.result()
    return False, None
