"""RunHost: a long-lived async Ray actor that hosts many RunActors.

A host is the foundation's ``LocalBackend`` inside a Ray actor: the same RunActor class runs
each run in the host's event loop, writing straight to the store. A host is named (its name is
the owner recorded with its runs), restartable, and when it starts it first ends whatever its
previous incarnation left active, so a killed host never leaves runs behind.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ...clock import SystemClock, parse_timestamp
from ...events import RunAdmittedEvent
from ...ids import UlidIds
from ...models import ModelRegistry
from ...records import admission_header
from ...store import open_store, run_stream
from ..backend import LocalBackend
from ..discovery import WorkflowRegistry
from ..recovery import end_orphaned_runs
from ..services import RunServices

__all__ = ["HostConfig", "RunHost"]

logger = logging.getLogger("flue_actors.host")
_CLAIMS_KEPT = 100_000
_ADOPT_EVERY_SECONDS = 2.0
_ADOPT_AFTER_MS = 2_000


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
        # Runs this incarnation has taken on (recent ones, bounded): the guard that makes a
        # run start here once, whether its Ray call or the adoption sweep gets to it first.
        self._claimed: set[str] = set()
        self._claim_order: collections.deque[str] = collections.deque()
        self._adopter: asyncio.Task[None] | None = None

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
                if not config.dedicated:
                    self._adopter = asyncio.get_running_loop().create_task(self._adopt_forever())
        assert self._backend is not None
        return self._backend

    def _claim(self, run_id: str) -> bool:
        """True the first time this incarnation sees ``run_id`` (synchronous: no await between
        the check and the claim, so the Ray call and the adoption sweep cannot both win)."""
        if run_id in self._claimed:
            return False
        self._claimed.add(run_id)
        self._claim_order.append(run_id)
        if len(self._claim_order) > _CLAIMS_KEPT:
            self._claimed.discard(self._claim_order.popleft())
        return True

    async def _adopt_forever(self) -> None:
        """Start the runs admitted to this host that never reached it.

        The admitting process hands a run over with a Ray call it does not wait for; if that
        process dies at once, the call can be lost, and the run would sit ``active`` under a
        living owner forever. So a host looks for its own active runs that have no events yet
        and that it has not taken on, and starts them from the log.
        """
        backend = self._backend
        assert backend is not None
        store = backend.store
        while True:
            await asyncio.sleep(_ADOPT_EVERY_SECONDS)
            try:
                owned = await store.orphaned_runs(
                    stale_before_ms=self._clock.now_ms() - _ADOPT_AFTER_MS,
                    owner=self._config.owner,
                )
                for run_id in owned:
                    if run_id in self._claimed:
                        continue
                    record = await store.get_run(run_id)
                    meta = await store.stream_meta(run_stream(run_id))
                    if record is None or record.is_terminal or meta is None or meta.length:
                        continue  # ended, or started by a previous life (its sweep ends it)
                    if parse_timestamp(record.started_at) < self._born_ms or not self._claim(
                        run_id
                    ):
                        continue
                    logger.warning(
                        "%s adopts run %s, which never reached it", self._config.owner, run_id
                    )
                    await backend.start(admission_header(record))
            except Exception as error:
                logger.warning("%s: adopting runs failed: %s", self._config.owner, error)

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
        if self._claim(header["runId"]):
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
