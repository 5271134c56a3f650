"""``CallHandle``: an operation in flight that can be awaited or aborted."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, Generic, TypeVar

from ..errors import AbortError

__all__ = ["CallHandle"]

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

    async def settle(self) -> None:
        """Wait for the operation to end, whatever its outcome."""
        await asyncio.wait({self._task})
