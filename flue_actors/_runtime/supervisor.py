"""The lease supervisor: every serving process ends the runs whose owner is gone, continuously.

A crashed process (``kill -9``) or a lost node leaves its runs ``active`` with an owner that no
longer heartbeats. Whichever serving process is alive (a restarted one, or another gateway on
the same store) sweeps every ``sweep_seconds`` and ends each run whose owner has been silent for
``lease_seconds`` (``recovery.end_orphaned_runs``: ``run_resume`` then ``run_interrupted``,
fenced). So a run orphaned at time T is terminal by T + lease + sweep, with no new traffic and
no one running ``flue-actors runs recover``. Sweeping is idempotent and fenced, so any number of
processes may sweep the same store at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .._clock import Clock
from ..store import EventStore
from .lease import check_lease_settings, lease_deadline_ms, living_leases
from .recovery import end_orphaned_runs

__all__ = ["LeaseSupervisor"]

logger = logging.getLogger("flue_actors.supervisor")


class LeaseSupervisor:
    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        lease_seconds: float,
        sweep_seconds: float,
        resume: Callable[[str, str | None], Awaitable[bool | None]] | None = None,
    ) -> None:
        check_lease_settings(lease_seconds, sweep_seconds)
        # Offered each orphan first (the local backend replays it here); what it declines is
        # ended ``run_interrupted``, what it cannot hand over now is offered again next sweep.
        self.resume = resume
        self.lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self._store = store
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.swept = 0  # sweeps completed, for observers (tests, health)
        self.ended = 0  # runs this supervisor has ended

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sweep(self) -> list[str]:
        """One sweep: end every run whose owner has been silent for the lease, except the
        runs of owners living in this process: under load their heartbeat task can be starved
        past the lease while their runs go on, and a sweep of its own process must not take
        them. Their heartbeats are renewed first, so other processes see them alive too."""
        living = living_leases()
        for lease in living:
            try:
                await lease.beat()
            except Exception as error:  # spared all the same: it is alive, here
                logger.warning("renewing the heartbeat of %s failed: %s", lease.owner, error)
        ended = await end_orphaned_runs(
            self._store,
            self._clock,
            stale_before_ms=lease_deadline_ms(self.lease_seconds),
            resume=self.resume,
            spare={lease.owner for lease in living},
        )
        self.swept += 1
        self.ended += len(ended)
        return ended

    def start(self) -> None:
        """Sweep from now on in the running event loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="flue-lease-supervisor"
            )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as error:  # a store hiccup must not stop supervision for good
                logger.warning("sweeping orphaned runs failed: %s", error)
            await asyncio.sleep(self.sweep_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
