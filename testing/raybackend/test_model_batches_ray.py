"""One model-batch collector shared across the cluster: turns made in processes on both nodes
go out in one Message Batch (the session's fake Messages API, which the nodes are aimed at)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flue_actors import ModelBatches
from flue_actors.testing.messages_server import MessagesServer

pytestmark = pytest.mark.ray


async def test_hosts_on_both_nodes_share_one_collector(
    ray_cluster: Any, messages_server: MessagesServer
) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from flue_actors.runtime.ray.turn_batcher import RayTurnBatcher

    # Defined here, so Ray ships it by value (workers cannot import this test module).
    def _turns_on_this_node(name: str, settings: ModelBatches, texts: list[str]) -> list[Any]:
        """In a Ray worker: a batched provider whose batcher is the shared collector."""
        import asyncio

        from flue_actors.models import AnthropicProvider, MessageBatchesProvider, ModelRequest
        from flue_actors.runtime.ray.turn_batcher import RayTurnBatcher

        async def turns() -> list[Any]:
            provider = MessageBatchesProvider(
                AnthropicProvider(), settings, batcher=RayTurnBatcher(name, settings)
            )
            requests = [
                ModelRequest(
                    model="claude-haiku-4-5",
                    messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
                    thinking_level="off",
                )
                for text in texts
            ]
            responses = await asyncio.gather(
                *(provider.complete(r, lambda _e: None) for r in requests)
            )
            await provider.aclose()
            return [(response.text, response.batch_id) for response in responses]

        return asyncio.run(turns())

    settings = ModelBatches(max_requests=4, window=math.inf, poll_interval=0.01)
    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    assert len(nodes) == 2
    work = ray.remote(_turns_on_this_node)
    answers = [
        work.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        ).remote("shared-test", settings, [f"node {index} turn {turn}" for turn in range(2)])
        for index, node in enumerate(nodes)
    ]
    results = (await answers[0], await answers[1])
    collector = RayTurnBatcher("shared-test", settings)
    try:
        assert await collector.counts() == {"batches": 1, "submitted": 4}
    finally:
        await collector.shutdown()
    batches = messages_server.batches()
    assert len(batches) == 1
    assert batches[0]["request_counts"]["succeeded"] == 4
    for index, node_results in enumerate(results):
        assert [text for text, _ in node_results] == [
            f"SUMMARY: node {index} turn {turn}" for turn in range(2)
        ]
        assert {batch_id for _, batch_id in node_results} == {batches[0]["id"]}
