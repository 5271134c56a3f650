"""One model-batch collector for every host of a cluster: a named Ray actor holding a
:class:`~flue_actors.models.MessageBatchCollector`, and :class:`RayTurnBatcher`, the
:class:`~flue_actors.models.TurnBatcher` a host's registry uses to reach it.

The actor submits the batches with the Anthropic provider of its own node (its key and base
URL come from that node's environment, as the hosts' do), so turns of runs on every host share
batches. A deployment with model batches names one after itself (``Deployment.batch_collector``),
and one per settings for batches with settings of their own (``Deployment.collector_for``), so
serves of one deployment share them and a deployment with other settings gets its own.

A collector is retired (:meth:`RayTurnBatcher.retire`) when its deployment's host or its batch
ends: it exits as soon as no turn is in a call to it, refusing every call from then on. A caller
refused, or whose collector died (killed, its node lost), makes the collector again and asks
again; a turn whose enqueue was cut short asks with ``since`` set before its first attempt, so a
batch the dead collector created for it is found instead of submitted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from ...errors import ModelRequestError
from ...models import AnthropicProvider, BatchedResult, MessageBatchCollector, ModelBatches
from .environment import shared_actor

__all__ = ["COLLECTOR_PREFIX", "BatchCollectorActor", "RayTurnBatcher"]

logger = logging.getLogger("flue_actors.model_batches")

COLLECTOR_PREFIX: Final = "flue-model-batches-"
# Every waiting turn is one call in the actor: room for the largest batch and the next one.
_CONCURRENCY: Final = 200_000
# How far the API's clock (a batch's created_at) may run behind this one, for the search a
# turn whose collector died makes for its request.
_CLOCK_SKEW_SECONDS: Final = 300.0
# Tries to reach a collector (a retired or dead one is made again in between), and the
# longest pause between two.
_ATTEMPTS: Final = 20
_MAX_PAUSE_SECONDS: Final = 1.0


class BatchCollectorActor:
    """The shared collector (an async Ray actor). ``enqueue`` and ``result`` answer ``None``
    once it is retired: the caller makes a new one."""

    def __init__(self, settings: ModelBatches) -> None:
        self._provider = AnthropicProvider()
        self._collector = MessageBatchCollector(self._provider.sdk_client, settings)
        self._calls = 0
        self._retiring = False
        self._retired = False

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], since: float | None = None
    ) -> str | None:
        if self._retired:
            return None
        self._calls += 1
        try:
            return await self._collector.enqueue(custom_id, params, since=since)
        finally:
            self._calls -= 1
            self._exit_if_idle()

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult | None:
        if self._retired:
            return None
        self._calls += 1
        try:
            return await self._collector.result(batch_id, custom_id)
        finally:
            self._calls -= 1
            self._exit_if_idle()

    async def progress(self) -> dict[str, int]:
        return await self._collector.progress()

    async def retire(self) -> bool:
        """Exit once no turn is in a call here (now, if none is: ``True``). A batch still
        processing is not lost: a turn waiting on it asks a new collector, which polls it."""
        self._retiring = True
        return self._exit_if_idle()

    def _exit_if_idle(self) -> bool:
        if not self._retiring or self._retired or self._calls:
            return self._retired
        self._retired = True
        asyncio.get_running_loop().create_task(self._exit())
        return True

    async def _exit(self) -> None:
        import ray

        await self.close()
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    async def close(self) -> None:
        await self._collector.aclose()
        await self._provider.aclose()


class RayTurnBatcher:
    """Reaches the collector named ``name`` (made on first use with ``settings``, and again
    after it retired or died), from any process attached to the cluster. ``aclose`` leaves the
    actor to the others using it; :meth:`retire` lets it go once idle; :meth:`shutdown` ends
    it."""

    def __init__(self, name: str, settings: ModelBatches) -> None:
        self.name = COLLECTOR_PREFIX + name
        self._settings = settings
        self._actor: Any = self._made()
        self._warned = False  # a collector's death is logged once per batcher, not per turn

    def _made(self) -> Any:
        return shared_actor(
            BatchCollectorActor, self.name, self._settings, max_concurrency=_CONCURRENCY
        )

    async def _ask(self, method: str, *args: Any) -> tuple[Any, bool]:
        """The collector's answer, and whether the call was cut short by its death."""
        from ray.exceptions import RayActorError

        try:
            return await getattr(self._actor, method).remote(*args), False
        except RayActorError:
            return None, True

    async def _again(self, attempt: int, died: bool) -> None:
        """Pause, then make the collector again; after the last attempt, give up."""
        why = "it died" if died else "it retired"
        if died and not self._warned:
            self._warned = True
            logger.warning("model batch collector %s died; its turns ask a new one", self.name)
        if attempt + 1 >= _ATTEMPTS:
            raise ModelRequestError(
                f"The model batch collector {self.name} could not be reached ({why}).",
                transient=True,
                code="batch_collector_unavailable",
            )
        await asyncio.sleep(min(0.02 * 2**attempt, _MAX_PAUSE_SECONDS))
        self._actor = self._made()

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], *, since: float | None = None
    ) -> str:
        started = time.time() - _CLOCK_SKEW_SECONDS
        attempt = 0
        while True:
            batch_id, died = await self._ask("enqueue", custom_id, params, since)
            if batch_id is not None:
                return str(batch_id)
            if died:
                # It may have created the turn's batch before it died: search from before.
                since = started if since is None else min(since, started)
            await self._again(attempt, died)
            attempt += 1

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult:
        attempt = 0
        while True:
            result, died = await self._ask("result", batch_id, custom_id)
            if isinstance(result, BatchedResult):
                return result
            await self._again(attempt, died)
            attempt += 1

    async def progress(self) -> dict[str, int]:
        """The shared collector's counters (see ``MessageBatchCollector.progress``)."""
        progress, died = await self._ask("progress")
        if died:  # a new collector, which has counted nothing yet
            self._actor = self._made()
            progress = await self._actor.progress.remote()
        return dict(progress)

    async def retire(self) -> bool:
        """Let the collector exit once no turn is in a call to it (``True``: it has)."""
        answer, died = await self._ask("retire")
        return died or bool(answer)

    async def aclose(self) -> None:
        return None

    async def shutdown(self) -> None:
        import ray

        await self._actor.close.remote()
        ray.kill(self._actor)
