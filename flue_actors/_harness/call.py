"""``CallHandle``: an operation in flight that can be awaited or aborted."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, Generic, Protocol, TypeVar

from ..errors import AbortError

__all__ = ["AbortSignal", "CallHandle"]


class AbortSignal(Protocol):
    """An external abort for a call (``signal=``), Python's shape of Flue's ``AbortSignal``:
    an :class:`asyncio.Event` or anything with ``is_set()`` and ``async wait()``. Setting it
    aborts the call; a ``reason`` attribute, if it has one, becomes the abort reason."""

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


T = TypeVar("T")


def _observe_outcome(task: asyncio.Task[Any]) -> None:
    # An operation nobody awaits must not surface as "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class CallHandle(Generic[T]):
    """Returned by session operations: ``await handle`` for the result, ``handle.abort()`` to stop.

    Aborting makes the awaited result an :class:`~flue_actors.errors.AbortError`.
    """

    def __init__(self, task: asyncio.Task[T]) -> None:
        self._task = task
        self.abort_reason: str | None = None
        task.add_done_callback(_observe_outcome)

    def __await__(self) -> Generator[Any, None, T]:
        return self._outcome().__await__()

    async def _outcome(self) -> T:
        try:
            return await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            aborted = self._task.cancelled() and self.abort_reason is not None
            if aborted and (current is None or not current.cancelling()):
                # Aborted before it began: the same AbortError as an abort mid-way.
                raise AbortError(self.abort_reason) from None
            raise

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def aborted(self) -> bool:
        return self.abort_reason is not None

    def abort(self, reason: str | None = None) -> None:
        """Abort the operation. Idempotent; a finished operation is left as it ended."""
        if self._task.done() or self.abort_reason is not None:
            return
        self.abort_reason = reason or "The operation was aborted."
        self._task.cancel(self.abort_reason)

    def abort_on(self, signal: AbortSignal) -> None:
        """Abort when ``signal`` is set (at once if it already is)."""

        def abort(*_: object) -> None:
            reason = getattr(signal, "reason", None)
            self.abort(reason if isinstance(reason, str) and reason else "The signal was set.")

        if signal.is_set():
            abort()
            return
        watcher = asyncio.ensure_future(signal.wait())
        watcher.add_done_callback(lambda done: None if done.cancelled() else abort())
        # The watch ends with the call, so a signal outliving it keeps nothing alive.
        self._task.add_done_callback(lambda _: watcher.cancel())

    async def settle(self) -> None:
        """Wait for the operation to end, whatever its outcome."""
        await asyncio.wait({self._task})
