"""RunHost: a long-lived async Ray actor that hosts many RunActors.

A host is the foundation's ``LocalBackend`` inside a Ray actor: the same RunActor class runs
each run in the host's event loop, writing straight to the store. A host is named (its name is
the owner recorded with its runs), restartable, and when it starts it first ends whatever its
previous incarnation left active, so a killed host never leaves runs behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ...clock import SystemClock
from ...events import RunAdmittedEvent
from ...ids import UlidIds
from ...models import ModelRegistry
from ...store import open_store
from ..backend import LocalBackend
from ..discovery import WorkflowRegistry
from ..recovery import end_orphaned_runs
from ..services import RunServices

__all__ = ["HostConfig", "RunHost"]

logger = logging.getLogger("flue_actors.host")


@dataclass(frozen=True)
class HostConfig:
    """Everything a host needs, in plain values that cross process boundaries."""

    owner: str
    database_url: str
    workflows_dir: str
    model: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # A dedicated host runs one run and then ends its own process (isolation="process").
    dedicated: bool = False


class RunHost:
    def __init__(self, config: HostConfig) -> None:
        self._config = config
        self._clock = SystemClock()
        # The incarnation's birth: runs of this owner admitted before it are its past life's.
        self._born_ms = self._clock.now_ms()
        self._backend: LocalBackend | None = None
        self._opening: asyncio.Lock | None = None

    async def _open(self) -> LocalBackend:
        if self._backend is not None:
            return self._backend
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._backend is None:
                config = self._config
                services = RunServices(
                    store=open_store(config.database_url),
                    # A module that fails to import fails only its own runs, with that error.
                    workflows=WorkflowRegistry.discover(config.workflows_dir),
                    models=ModelRegistry(override=config.model),
                    clock=self._clock,
                    ids=UlidIds(self._clock),
                    env=config.env,
                )
                backend = LocalBackend(services, owner=config.owner)
                await backend.lease.beat()
                backend.lease.keep_alive()
                # A dedicated host is named after its one run and never restarts: it has no
                # previous life, and its run was admitted before it was born.
                if not config.dedicated:
                    ended = await end_orphaned_runs(
                        services.store,
                        self._clock,
                        stale_before_ms=self._born_ms,
                        owner=config.owner,
                    )
                    if ended:
                        logger.warning(
                            "%s ended %d runs of its past life", config.owner, len(ended)
                        )
                self._backend = backend
        assert self._backend is not None
        return self._backend

    async def ready(self) -> dict[str, Any]:
        """Open the host (store, workflows, recovery) and say where it runs."""
        await self._open()
        import ray

        return {
            "owner": self._config.owner,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }

    async def run(self, header: RunAdmittedEvent) -> str:
        """Execute one admitted run to its end; returns its run id. The caller may drop the
        returned reference: the run goes on regardless."""
        backend = await self._open()
        await backend.start(header)
        await backend.join(header["runId"])
        if self._config.dedicated:
            asyncio.get_running_loop().call_later(0.05, self._exit)
        return header["runId"]

    async def cancel(self, run_id: str, reason: str) -> bool:
        backend = await self._open()
        return await backend.cancel(run_id, reason)

    async def active(self) -> int:
        backend = await self._open()
        return backend.active

    def _exit(self) -> None:
        import ray

        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
