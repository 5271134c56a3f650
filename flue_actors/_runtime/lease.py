"""An owner's lease on its runs: a heartbeat in the store while the owner lives.

Runs are admitted with the name of the owner that will execute them. A supervisor that finds an
active run whose owner stopped heartbeating ends it (``recovery``), so a crashed process or a
lost node never leaves runs ``active`` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Final

from .._clock import SystemClock
from ..store import EventStore

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_SWEEP_SECONDS",
    "HEARTBEAT_SECONDS",
    "MIN_LEASE_SECONDS",
    "OwnerLease",
    "check_lease_settings",
    "lease_deadline_ms",
    "living_leases",
    "process_owner_name",
]

logger = logging.getLogger("flue_actors.lease")
HEARTBEAT_SECONDS: Final = 1.0
# A run whose owner has not been heard of for this long is considered orphaned.
DEFAULT_LEASE_SECONDS: Final = 10.0
# How often a serving process looks for orphaned runs. A run orphaned by a crash is ended at
# most lease + sweep seconds after its owner's last heartbeat (15 s with these defaults).
DEFAULT_SWEEP_SECONDS: Final = 5.0
# Owners (Ray hosts included) heartbeat every second; a lease shorter than three heartbeats
# would end the runs of an owner that is merely busy for a moment.
MIN_LEASE_SECONDS: Final = 3 * HEARTBEAT_SECONDS


def check_lease_settings(lease_seconds: float, sweep_seconds: float) -> None:
    """Refuse a lease or sweep interval that cannot work (``ValueError``)."""
    if not lease_seconds >= MIN_LEASE_SECONDS:
        raise ValueError(
            f"lease_seconds must be at least {MIN_LEASE_SECONDS:g} (three heartbeats); "
            f"got {lease_seconds:g}"
        )
    if not 0 < sweep_seconds < float("inf"):
        raise ValueError(f"sweep_seconds must be a positive number; got {sweep_seconds:g}")


# How long stopping waits for a heartbeat in flight.
_STOP_SECONDS: Final = 5.0


# The leases kept alive in this process: their owners run here, so they are alive whatever
# their heartbeat says (a starved event loop can delay a beat past the lease).
_LIVING: dict[str, OwnerLease] = {}


def living_leases() -> list[OwnerLease]:
    """The leases this process keeps alive now (``keep_alive`` until ``stop``)."""
    return list(_LIVING.values())


def process_owner_name(kind: str) -> str:
    """A name no other process will ever use: ``kind:host:pid:random``."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_deadline_ms(lease_seconds: float) -> int:
    """Owners not heard of since this wall-clock instant have lost their runs."""
    return SystemClock().now_ms() - int(lease_seconds * 1000)


class OwnerLease:
    """Heartbeats use the wall clock, never an injected one: liveness is about real time, and a
    test's stepping clock must not move because a heartbeat happened to read it."""

    def __init__(self, store: EventStore, owner: str, *, interval: float = HEARTBEAT_SECONDS):
        self.owner = owner
        self._store = store
        self._clock = SystemClock()
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def beat(self) -> None:
        await self._store.heartbeat(self.owner, self._clock.now_ms())

    def keep_alive(self) -> None:
        """Heartbeat from now on, in the running event loop (idempotent)."""
        _LIVING[self.owner] = self
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._beat_forever(self._stopping))

    async def _beat_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.beat()
            except Exception as error:  # a store hiccup must not stop the heartbeats for good
                logger.warning("heartbeat of %s failed: %s", self.owner, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)

    async def stop(self) -> None:
        """Stop heartbeating and leave: the owner's row goes unless it still has active runs
        (then it stays, silent, so the sweep ends them)."""
        task, self._task = self._task, None
        _LIVING.pop(self.owner, None)
        if task is None:
            return
        # Let a beat in flight finish rather than cancel it: a cancelled write can still land
        # after the leave and bring the row back.
        self._stopping.set()
        if not task.done():  # (done already if its event loop has gone)
            await asyncio.wait({task}, timeout=_STOP_SECONDS)
        if not task.done():  # the store hangs: leave the row to the sweep
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        try:
            await self._store.prune_owners(
                stale_before_ms=self._clock.now_ms() + 1, owner=self.owner
            )
        except Exception as error:  # the sweep prunes it later
            logger.warning("%s could not leave the owners table: %s", self.owner, error)
