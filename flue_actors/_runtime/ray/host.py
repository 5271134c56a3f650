"""RunHost: a long-lived async Ray actor that hosts many RunActors.

A host is the foundation's ``LocalBackend`` inside a Ray actor: the same RunActor class runs
each run in the host's event loop, writing straight to the store. A host is named (its name is
the owner recorded with its runs), restartable, and when it starts it first ends whatever its
previous incarnation left active, so a killed host never leaves runs behind. It admits the runs
it is handed itself (``admit``), a batch per call, so its store file has one writer.

A host belongs to one deployment (``deployment.py``). Once a newer deployment of its store and
workflows folder is current, or ``flue-actors hosts stop`` retires it, it drains: it finishes its
runs, ends any new one it is handed with ``host_draining``, and exits when it has none left.
Credentials are not among its arguments: it reads them from its node's environment (Ray workers
inherit the environment ``ray start`` ran with).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from ..._clock import SystemClock
from ..._events import RunAdmittedEvent
from ..._ids import UlidIds
from ..._records import RunRecord
from ...errors import StreamClosedError, StreamConflictError
from ...models import ModelBatches, ModelRegistry, TurnBatcher, Usage, UsageMeter
from ...store import open_store
from ..backend import Endings, LocalBackend
from ..discovery import WorkflowRegistry
from ..heap import settle_heap
from ..recovery import end_orphaned_runs, end_unstarted_run
from ..runtime import Runtime
from ..services import RunServices
from .deployment import Deployment, HostDrainingError, current_deployment, host_database_url

__all__ = ["HostConfig", "RunHost"]

logger = logging.getLogger("flue_actors.host")
# How often a host asks whether its deployment is still current, and whether it may exit.
WATCH_SECONDS: Final = 1.0

# The meter of the batch a run was handed over with: set while the host starts the run, so
# the run's task (and every task it starts: the runs it invokes) inherits it.
_batch_meter: ContextVar[UsageMeter | None] = ContextVar("flue_batch_meter", default=None)


class _BatchMeters(UsageMeter):
    """The host's meter: each model call is counted for the batch whose run made it, so a
    batch's caller gets its own totals back (``RunHost.usage``) while other runs share the
    host; calls of runs handed over without a meter are not counted."""

    def add(self, usage: Usage) -> None:
        meter = _batch_meter.get()
        if meter is not None:
            meter.add(usage)


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
        self._services: RunServices | None = None
        self._opening: asyncio.Lock | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._draining = False
        self._retiring = False
        # The generation its deployment was made current at (see deployment.current_deployment);
        # a restarted incarnation knows none, and yields to any other current deployment.
        self._generation = 0
        self._calls = 0  # admit() and run() calls in progress
        # Set when it leaves for good: the callers watching it (see RayBackend) stop.
        self._gone: asyncio.Event | None = None
        # The usage of the model calls of each metered batch's runs here, until collected.
        self._meters: dict[str, UsageMeter] = {}

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
                # A runtime of the host's own (never served or closed: the host owns its store
                # and backend), so that runs hosted here can invoke workflows (ctx.invoke):
                # those runs are admitted to, and run in, this host.
                runtime = Runtime(
                    # A module that fails to import fails only its own runs, with that error.
                    WorkflowRegistry.discover(deployment.workflows_dir),
                    store=open_store(host_database_url(deployment.database_url, os.environ)),
                    models=_models(deployment),
                    clock=self._clock,
                    ids=UlidIds(self._clock),
                    env=env,
                )
                # Runs batched with settings of their own (a batch's) share a collector of
                # the cluster too, one per settings.
                services = replace(runtime.services, batchers=partial(_collector, deployment))
                self._services = services
                backend = LocalBackend(services, owner=config.owner)
                runtime.backend = backend
                # The model providers its runs will call, ready before it owns any: importing
                # the Anthropic SDK holds the host's loop for seconds, which its first run
                # (and every run and heartbeat waiting on the loop) would otherwise pay.
                runtime.prepare_models()
                await backend.lease.beat()
                backend.lease.keep_alive()
                # A dedicated host is named after its one run and never restarts: it has no
                # previous life, and its run was admitted before it was born.
                if not config.dedicated:
                    # Runs of workflows that resume are resumed here by replay; the rest end.
                    ended = await end_orphaned_runs(
                        services.store,
                        self._clock,
                        stale_before_ms=self._born_ms,
                        owner=config.owner,
                        resume=backend.resume,
                    )
                    if ended:
                        logger.warning(
                            "%s ended %d runs of its past life", config.owner, len(ended)
                        )
                self._backend = backend
                if not config.dedicated:
                    loop = asyncio.get_running_loop()
                    self._watcher = loop.create_task(self._watch_forever())
                    # The host's process is its own and long-lived, with hundreds of runs in
                    # flight: the collector's settings of serve and batch (see heap.py), Ray,
                    # flue_actors and the workflows frozen as loaded.
                    settle_heap()
        assert self._backend is not None
        return self._backend

    async def _take(
        self, backend: LocalBackend, header: RunAdmittedEvent, meter: str | None = None
    ) -> None:
        """Start a run admitted to this host (its model calls counted for batch ``meter``), or,
        draining, end it unstarted."""
        if not self._draining:
            token = _batch_meter.set(None if meter is None else self._meters.setdefault(
                meter, UsageMeter()
            ))  # fmt: skip
            try:
                await backend.start(header)
            finally:
                _batch_meter.reset(token)
            return
        refusal = HostDrainingError(host=self._config.owner, deployment=self._deployment_id)
        # Written meanwhile by someone else (a cancel, recovery): not this host's to end.
        with contextlib.suppress(StreamConflictError, StreamClosedError):
            await end_unstarted_run(backend.store, header, self._clock, refusal)
        owner = self._config.owner
        logger.warning("%s is draining and ended run %s unstarted", owner, header["runId"])

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
        if self._gone is not None:
            self._gone.set()
        if self._backend is not None:
            await self._backend.close()
        if self._services is not None:
            await _retire_collectors(self._services)
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

    async def admit(
        self, headers: list[RunAdmittedEvent], meter: str | None = None
    ) -> list[str | bool]:
        """Admit a batch of runs placed on this host, in one transaction of its own store
        (so each store file has one writer), and start them; answers once the admission is
        durable, per run ``True`` (admitted now, and here), ``False`` (it existed already, or its
        idempotency key belongs to another run) or why it could not start (it is then ended).
        A run admitted before (a repeated call) is not started again. Draining, it still
        admits them, and ends them unstarted with ``host_draining``, so the caller
        never holds a run that is neither admitted nor ended.

        No run is admitted to a host without reaching it: admission and hand-over are this
        one call, so a host needs no sweep for runs it never got. If the host dies after the
        transaction but before answering, its restarted incarnation (or the caller's watch, or
        the lease sweep) ends them.

        ``meter`` names the batch these runs belong to: their model calls are counted for it,
        and ``usage(meter)`` answers the totals."""
        self._calls += 1
        try:
            return await self._admit(headers, meter)
        finally:
            self._calls -= 1

    async def admit_following(
        self, headers: list[RunAdmittedEvent], meter: str | None = None
    ) -> AsyncIterator[list[str | bool] | dict[str, RunRecord | bool]]:
        """``admit``, streamed (a Ray generator): its answers first, then, as the runs it
        admitted now end, how each ended (by run id, as ``LocalBackend.join`` answers: its
        terminal record, or ``True`` if the run wrote no ``run_end`` of its own), those that
        ended together in one item. The caller awaiting them holds this one call per chunk,
        not a call or a read per run. If the host dies meanwhile, the call fails, and the
        runs it had not reported are followed through the log."""
        endings: dict[str, asyncio.Future[RunRecord | bool]] = {}
        self._calls += 1
        try:
            answers = await self._admit(headers, meter, endings)
        finally:
            # Only the admission holds a draining host back: a caller that stopped reading
            # (it died) must not keep it for ever, and one that misses the last ends because
            # the host left follows those runs through the log.
            self._calls -= 1
        yield answers
        ended: dict[str, RunRecord | bool] = {}
        arrived = asyncio.Event()

        def report(run_id: str, ending: asyncio.Future[RunRecord | bool]) -> None:
            ended[run_id] = True if ending.cancelled() else ending.result()
            arrived.set()

        for run_id, ending in endings.items():
            ending.add_done_callback(partial(report, run_id))
        left = len(endings)
        while left:
            await arrived.wait()
            arrived.clear()
            reported, ended = ended, {}
            left -= len(reported)
            yield reported

    async def _admit(
        self,
        headers: list[RunAdmittedEvent],
        meter: str | None,
        endings: Endings | None = None,
    ) -> list[str | bool]:
        """``admit``'s work; with ``endings``, each run it started is given its ending there
        (``LocalBackend.ending``)."""
        backend = await self._open()
        owner = self._config.owner
        admitted = await backend.store.admit_runs(headers, owner=owner)
        answers: list[str | bool] = []
        for header, new in zip(headers, admitted, strict=True):
            if not new:
                answers.append(False)
                continue
            try:
                await self._take(backend, header, meter)
                answers.append(True)
            except Exception as error:
                with contextlib.suppress(StreamConflictError, StreamClosedError):
                    await end_unstarted_run(backend.store, header, self._clock, error)
                answers.append(f"{owner} could not start run {header['runId']}: {error}")
                continue
            ending = None if endings is None else backend.ending(header["runId"])
            if endings is not None and ending is not None:
                endings[header["runId"]] = ending
        return answers

    async def watch(self) -> None:
        """Returns only when this host leaves for good; a caller awaiting it learns of the
        host's death from the call failing (one call per caller and host, not one per run).
        A restarted incarnation opens here, when its caller watches it again: it resumes the
        runs of its past life at once, without waiting for traffic."""
        await self._open()
        self._gone = self._gone or asyncio.Event()
        await self._gone.wait()

    async def settle(self, grace_seconds: float | None = None) -> int:
        """Before its private Ray instance shuts down: let this host's runs finish (at most
        ``grace_seconds``), end the rest ``run_interrupted``, and leave the owners table.
        Returns how many runs it had."""
        backend = await self._open()
        had = backend.active
        self._draining = True
        await backend.close(grace_seconds=grace_seconds)
        return had

    async def run(self, header: RunAdmittedEvent) -> str:
        """Execute one run, admitted by the caller, to its end (a dedicated host, whose actor
        exists only for it); returns its run id."""
        self._calls += 1
        try:
            backend = await self._open()
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

    async def resume(self, run_ids: list[str]) -> list[str]:
        """Take over these runs, whose owner is gone, and resume them here by replay; returns
        the ones it declined (a draining host takes none; see ``LocalBackend.resume``), for
        the caller to end."""
        backend = await self._open()
        declined = []
        for run_id in run_ids:
            try:
                taken = not self._draining and await backend.resume(run_id)
            except Exception as error:
                logger.error("%s could not resume run %s: %s", self._config.owner, run_id, error)
                taken = False
            if not taken:
                declined.append(run_id)
        return declined

    async def usage(self, meter: str) -> Usage | None:
        """The usage of the model calls the runs of batch ``meter`` made here so far (``None``:
        none was handed over here), forgotten once answered: the batch's caller asks once,
        when its runs have ended."""
        found = self._meters.pop(meter, None)
        return None if found is None else found.total

    async def active(self) -> int:
        backend = await self._open()
        return backend.active


def _models(deployment: Deployment) -> ModelRegistry:
    """The host's models: with model batches, through the collector its deployment shares;
    with rate limits, paced by the budget it shares."""
    limiter = None
    if deployment.rate_limits is not None and deployment.rate_limiter is not None:
        from .rate_limiter import RayRateLimiter

        limiter = RayRateLimiter(deployment.rate_limiter, deployment.rate_limits)
    if deployment.model_batches is None:
        return ModelRegistry(override=deployment.model, limiter=limiter, meter=_BatchMeters())
    return ModelRegistry(
        override=deployment.model,
        model_batches=deployment.model_batches,
        batcher=_collector(deployment, deployment.model_batches),
        limiter=limiter,
        meter=_BatchMeters(),
    )


async def _retire_collectors(services: RunServices) -> None:
    """A host leaving for good lets the collectors its runs used go (each exits once no turn
    of another host is in a call to it)."""
    batchers = [services.models.batcher, *(r.batcher for r in services.batched_registries())]
    for batcher in batchers:
        retire = getattr(batcher, "retire", None)
        if retire is None:
            continue
        try:
            await retire()
        except Exception as error:  # the host leaves anyway; a collector left idle is harmless
            logger.warning("a model batch collector could not be retired: %s", error)


def _collector(deployment: Deployment, settings: ModelBatches) -> TurnBatcher:
    from .turn_batcher import RayTurnBatcher

    return RayTurnBatcher(deployment.collector_for(settings), settings)
