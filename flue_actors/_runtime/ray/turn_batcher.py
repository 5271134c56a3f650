"""One model-batch collector for every host of a cluster: a named Ray actor holding a
:class:`~flue_actors.models.MessageBatchCollector`, and :class:`RayTurnBatcher`, the
:class:`~flue_actors.models.TurnBatcher` a host's registry uses to reach it.

The actor submits the batches with the Anthropic provider of its own node (its key and base
URL come from that node's environment, as the hosts' do), so turns of runs on every host share
batches. A deployment with model batches names one after itself (``Deployment.batch_collector``),
so serves of one deployment share it and a deployment with other settings gets its own.
"""

from __future__ import annotations

from typing import Any, Final

from ...models import AnthropicProvider, BatchedResult, MessageBatchCollector, ModelBatches
from .environment import NAMESPACE

__all__ = ["COLLECTOR_PREFIX", "BatchCollectorActor", "RayTurnBatcher"]

COLLECTOR_PREFIX: Final = "flue-model-batches-"
# Every waiting turn is one call in the actor: room for the largest batch and the next one.
_CONCURRENCY: Final = 200_000


class BatchCollectorActor:
    """The shared collector (an async Ray actor)."""

    def __init__(self, settings: ModelBatches) -> None:
        self._provider = AnthropicProvider()
        self._collector = MessageBatchCollector(self._provider.sdk_client, settings)

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], since: float | None = None
    ) -> str:
        return await self._collector.enqueue(custom_id, params, since=since)

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult:
        return await self._collector.result(batch_id, custom_id)

    async def progress(self) -> dict[str, int]:
        return await self._collector.progress()

    async def close(self) -> None:
        await self._collector.aclose()
        await self._provider.aclose()


class RayTurnBatcher:
    """Reaches the collector named ``name`` (made on first use with ``settings``), from any
    process attached to the cluster. ``aclose`` leaves the actor to the others using it;
    :meth:`shutdown` ends it."""

    def __init__(self, name: str, settings: ModelBatches) -> None:
        import ray

        self.name = COLLECTOR_PREFIX + name
        self._actor: Any = (
            ray.remote(BatchCollectorActor)
            .options(
                name=self.name,
                namespace=NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
                max_concurrency=_CONCURRENCY,
                num_cpus=0,
            )
            .remote(settings)
        )

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], *, since: float | None = None
    ) -> str:
        batch_id: str = await self._actor.enqueue.remote(custom_id, params, since)
        return batch_id

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult:
        result: BatchedResult = await self._actor.result.remote(batch_id, custom_id)
        return result

    async def progress(self) -> dict[str, int]:
        """The shared collector's counters (see ``MessageBatchCollector.progress``)."""
        progress: dict[str, int] = await self._actor.progress.remote()
        return progress

    async def aclose(self) -> None:
        return None

    async def shutdown(self) -> None:
        import ray

        await self._actor.close.remote()
        ray.kill(self._actor)
