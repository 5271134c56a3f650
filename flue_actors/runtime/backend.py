"""Where admitted runs execute. The Runtime admits; a backend hosts the RunActors."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from ..events import RunAdmittedEvent
from ..store import EventStore
from .lease import OwnerLease, process_owner_name
from .run_actor import RunActor
from .services import RunServices

__all__ = ["LocalBackend", "RunBackend"]

logger = logging.getLogger("flue_actors.runtime")


class RunBackend(Protocol):
    def owner_for(self, run_id: str, workflow: str) -> str:
        """The owner that will execute this run, recorded at admission."""
        ...

    async def start(self, header: RunAdmittedEvent) -> None:
        """Hand an admitted run to its owner. Returns once the owner has accepted it."""
        ...

    async def join(self, run_id: str) -> bool:
        """Wait for a run this backend hosts here to end; ``False`` if it does not know it."""
        ...

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Ask the run's owner to cancel it; ``False`` if no live owner has it."""
        ...

    async def close(self) -> None:
        """Let hosted runs finish, then release resources."""
        ...


class LocalBackend:
    """RunActors as tasks in the event loop that admits them."""

    def __init__(self, services: RunServices, *, owner: str | None = None) -> None:
        self._services = services
        self._actors: dict[str, RunActor] = {}
        self._tasks: dict[str, asyncio.Task[object]] = {}
        self.lease = OwnerLease(services.store, owner or process_owner_name("local"))

    def owner_for(self, run_id: str, workflow: str) -> str:
        return self.lease.owner

    @property
    def store(self) -> EventStore:
        return self._services.store

    async def start(self, header: RunAdmittedEvent) -> None:
        self.lease.keep_alive()
        actor = RunActor(header, self._services)
        run_id = actor.run_id
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            actor.run(), name=f"flue-run-{run_id}"
        )
        self._actors[run_id] = actor
        self._tasks[run_id] = task
        task.add_done_callback(lambda done: self._finished(run_id, done))

    def _finished(self, run_id: str, task: asyncio.Task[object]) -> None:
        self._actors.pop(run_id, None)
        self._tasks.pop(run_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("run %s could not be ended: %s", run_id, task.exception())

    async def join(self, run_id: str) -> bool:
        task = self._tasks.get(run_id)
        if task is None:
            return False
        await asyncio.wait({task})
        return True

    async def cancel(self, run_id: str, reason: str) -> bool:
        actor = self._actors.get(run_id)
        if actor is None:
            return False
        actor.cancel(reason)
        return True

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()))
        await self.lease.stop()
