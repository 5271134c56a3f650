"""RunHost: a long-lived async Ray actor that hosts many RunActors.

A host is the foundation's ``LocalBackend`` inside a Ray actor: the same RunActor class runs
each run in the host's event loop, writing straight to the store. A host is named (its name is
the owner recorded with its runs), restartable, and when it starts it first ends whatever its
previous incarnation left active, so a killed host never leaves runs behind.

A host belongs to one deployment (``deployment.py``). Once a newer deployment of its store and
workflows folder is current, or ``flue-actors hosts stop`` retires it, it drains: it finishes its
runs, ends any new one it is handed with ``host_draining``, and exits when it has none left.
Credentials are not among its arguments: it reads them from its node's environment (Ray workers
inherit the environment ``ray start`` ran with).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Final

from ...clock import SystemClock, parse_timestamp
from ...errors import StreamClosedError, StreamConflictError
from ...events import RunAdmittedEvent, error_payload
from ...ids import UlidIds
from ...models import ModelRegistry
from ...records import admission_header
from ...store import open_store, run_stream
from ..backend import LocalBackend
from ..discovery import WorkflowRegistry
from ..recovery import end_orphaned_runs
from ..run_stream import RunStream
from ..services import RunServices
from .deployment import Deployment, HostDrainingError, current_deployment, host_database_url

__all__ = ["HostConfig", "RunHost"]

logger = logging.getLogger("flue_actors.host")
_CLAIMS_KEPT = 100_000
_ADOPT_EVERY_SECONDS = 2.0
_ADOPT_AFTER_MS = 2_000
# How often a host asks whether its deployment is still current, and whether it may exit.
WATCH_SECONDS: Final = 1.0


@dataclass(frozen=True)
class HostConfig:
    """A host's arguments: its name and its deployment, plain non-secret values."""

    owner: str
    deployment: Deployment
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
        self._watcher: asyncio.Task[None] | None = None
        self._draining = False
        self._retiring = False
        # The generation its deployment was made current at (see deployment.current_deployment);
        # a restarted incarnation knows none, and yields to any other current deployment.
        self._generation = 0
        self._calls = 0  # run() calls in progress

    async def _open(self) -> LocalBackend:
        if self._backend is not None:
            return self._backend
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._backend is None:
                config = self._config
                deployment = config.deployment
                # The node's environment (credentials included) under the deployment's settings.
                env = {**os.environ, **deployment.settings}
                if deployment.model:
                    env["FLUE_MODEL"] = deployment.model
                services = RunServices(
                    store=open_store(host_database_url(deployment.database_url, os.environ)),
                    # A module that fails to import fails only its own runs, with that error.
                    workflows=WorkflowRegistry.discover(deployment.workflows_dir),
                    models=ModelRegistry(override=deployment.model),
                    clock=self._clock,
                    ids=UlidIds(self._clock),
                    env=env,
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
                    loop = asyncio.get_running_loop()
                    self._adopter = loop.create_task(self._adopt_forever())
                    self._watcher = loop.create_task(self._watch_forever())
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
                    await self._take(backend, admission_header(record))
            except Exception as error:
                logger.warning("%s: adopting runs failed: %s", self._config.owner, error)

    async def _take(self, backend: LocalBackend, header: RunAdmittedEvent) -> None:
        """Start a run this host has just claimed, or, draining, end it unstarted."""
        if not self._draining:
            await backend.start(header)
            return
        # Only run_end, as when admission fails: the run never started anywhere.
        run_id = header["runId"]
        now = self._clock.now_ms()
        end = {
            "runId": run_id,
            "result": None,
            "isError": True,
            "error": error_payload(
                HostDrainingError(host=self._config.owner, deployment=self._deployment_id)
            ),
            "durationMs": max(0, now - parse_timestamp(header["startedAt"])),
        }
        # Written meanwhile by someone else (a cancel, recovery): not this host's to end.
        with contextlib.suppress(StreamConflictError, StreamClosedError):
            await RunStream(backend.store, run_id, self._clock).end("run_end", end, at_ms=now)
        logger.warning("%s is draining and ended run %s unstarted", self._config.owner, run_id)

    @property
    def _deployment_id(self) -> str:
        return self._config.deployment.id

    async def _watch_forever(self) -> None:
        """Drain once the deployment is superseded; exit once draining and idle."""
        backend = self._backend
        assert backend is not None
        lineage = self._config.deployment.lineage
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                if not self._draining:
                    current = await asyncio.to_thread(current_deployment, lineage)
                    if self._superseded_by(current):
                        logger.warning(
                            "%s: deployment %s is superseded by %s; draining",
                            self._config.owner,
                            self._deployment_id,
                            current,
                        )
                        self._draining = True
                if self._draining and backend.active == 0 and self._calls == 0:
                    await self._retire()
                    return
            except Exception as error:
                logger.warning("%s: watching its deployment failed: %s", self._config.owner, error)

    def _superseded_by(self, current: tuple[int, str] | None) -> bool:
        if current is None:
            return False
        generation, deployment = current
        return deployment != self._deployment_id and generation >= self._generation

    async def _retire(self) -> None:
        """Leave for good: stop heartbeating (leaving the owners table), then end the process."""
        import ray

        self._retiring = True
        if self._adopter is not None:
            self._adopter.cancel()
        if self._backend is not None:
            await self._backend.close()
        logger.warning("%s (deployment %s) exits", self._config.owner, self._deployment_id)
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    async def describe(self) -> dict[str, Any]:
        """Who and where this host is, and what it is doing (never opens it)."""
        import ray

        state = "retiring" if self._retiring else "draining" if self._draining else "serving"
        return {
            "name": self._config.owner,
            "deployment": self._deployment_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "active": 0 if self._backend is None else self._backend.active,
            "state": state,
            "dedicated": self._config.dedicated,
        }

    async def ready(self, resume: bool = False, generation: int = 0) -> dict[str, Any]:
        """Open the host (store, workflows, recovery) and say where it runs. ``resume``: a
        serve of this very deployment is becoming current at ``generation``, so a draining host
        serves again (one already retiring refuses, and the serve places a new host under its
        name)."""
        await self._open()
        if resume:
            if self._retiring:
                raise HostDrainingError(host=self._config.owner, deployment=self._deployment_id)
            self._generation = max(self._generation, generation)
            self._draining = False
        info = await self.describe()
        info["owner"] = info["name"]
        return info

    async def drain(self) -> dict[str, Any]:
        """Take no new runs, finish these, then exit."""
        await self._open()
        self._draining = True
        return await self.describe()

    async def run(self, header: RunAdmittedEvent) -> str:
        """Execute one admitted run to its end; returns its run id. The caller may drop the
        returned reference: the run goes on regardless."""
        self._calls += 1
        try:
            backend = await self._open()
            if self._claim(header["runId"]):
                await self._take(backend, header)
            await backend.join(header["runId"])
        finally:
            self._calls -= 1
        if self._config.dedicated:
            asyncio.get_running_loop().create_task(self._retire())
        return header["runId"]

    async def cancel(self, run_id: str, reason: str) -> bool:
        backend = await self._open()
        return await backend.cancel(run_id, reason)

    async def active(self) -> int:
        backend = await self._open()
        return backend.active
