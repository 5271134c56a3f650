"""One model-batch collector shared across the cluster: turns made in processes on both nodes
go out in one Message Batch (the session's fake Messages API, which the nodes are aimed at)."""

from __future__ import annotations

import asyncio
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

    from flue_actors._runtime.ray.turn_batcher import RayTurnBatcher

    # Defined here, so Ray ships it by value (workers cannot import this test module).
    def _turns_on_this_node(name: str, settings: ModelBatches, texts: list[str]) -> list[Any]:
        """In a Ray worker: a batched provider whose batcher is the shared collector."""
        import asyncio

        from flue_actors._runtime.ray.turn_batcher import RayTurnBatcher
        from flue_actors.models import AnthropicProvider, MessageBatchesProvider, ModelRequest

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
        progress = await collector.progress()
        assert (progress["batches"], progress["submitted"], progress["done"]) == (1, 4, 4)
        assert (progress["pending"], progress["waiting"]) == (0, 0)
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


async def test_runtime_on_ray_batches_the_turns_of_runs_on_every_host(
    ray_cluster: Any, project: Any, messages_server: MessagesServer
) -> None:
    import os

    from flue_actors import Runtime
    from flue_actors._runtime.ray import RayBackend, RayCluster
    from flue_actors._runtime.ray.turn_batcher import RayTurnBatcher

    runs = 6
    settings = ModelBatches(max_requests=runs, window=math.inf, poll_interval=0.05)
    # The agents' own model (anthropic/...), not the fake the other Ray tests override with.
    env = {name: value for name, value in os.environ.items() if name != "FLUE_MODEL"}
    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        env=env,
        model_batches=settings,
    )
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    deployment = backend._deployment
    assert deployment.model_batches == settings
    assert deployment.batch_collector is not None
    collector = RayTurnBatcher(deployment.batch_collector, settings)
    try:
        texts = [f"ray batch {index}" for index in range(runs)]
        records = await asyncio.gather(
            *(runtime.run("summarize", {"text": text}, timeout=60) for text in texts)
        )
        assert [record.status for record in records] == ["completed"] * runs
        assert [record.result for record in records] == [
            {"summary": f"SUMMARY: {text}"[:29]} for text in texts
        ]
        batches = messages_server.batches()
        assert len(batches) == 1
        assert batches[0]["request_counts"]["succeeded"] == runs
        assert not [r for r in messages_server.requests() if r["path"] == "/v1/messages"]
        for record in records:
            events = await runtime.events(record.run_id)
            (turn,) = [event for event in events if event["type"] == "turn"]
            assert turn["response"]["batch"]["id"] == batches[0]["id"]
        progress = await runtime.model_batch_progress()
        assert progress == await collector.progress()
        assert progress == {
            "pending": 0, "waiting": 0, "done": runs, "submitted": runs, "batches": 1
        }  # fmt: skip
    finally:
        await runtime.close()
        backend.shutdown_hosts()
        await collector.shutdown()


async def test_a_batchs_collector_killed_mid_batch_submits_no_request_twice(
    ray_cluster: Any, project: Any, messages_server: MessagesServer
) -> None:
    """``runtime.batch(..., model_batches=)`` on a runtime without model batches: the batch's
    turns go through a collector of its own, which is killed while they wait on their batch.
    The turns ask a new collector, which re-attaches (or finds the request by its custom_id):
    every item completes, no request is submitted twice, and once the batch has ended its
    collector retires."""
    import os

    import ray

    from flue_actors import Runtime
    from flue_actors._runtime.ray import RayBackend, RayCluster
    from flue_actors._runtime.ray.environment import NAMESPACE
    from flue_actors._runtime.ray.turn_batcher import COLLECTOR_PREFIX

    runs = 6
    settings = ModelBatches(max_requests=runs, window=math.inf, poll_interval=0.05)
    messages_server.batch_processing(0.5)  # the collector is killed while the batch processes
    env = {name: value for name, value in os.environ.items() if name != "FLUE_MODEL"}
    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        env=env,
    )
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    name = COLLECTOR_PREFIX + backend._deployment.collector_for(settings)
    texts = [f"batched {index}" for index in range(runs)]

    async def consume() -> list[Any]:
        inputs = [{"text": text} for text in texts]
        return [item async for item in runtime.batch("summarize", inputs, model_batches=settings)]

    try:
        consuming = asyncio.ensure_future(consume())
        for _ in range(400):
            if messages_server.batches():
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("no batch was created")
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        items = await asyncio.wait_for(consuming, 60)
        assert sorted(str(item.result) for item in items) == sorted(
            str({"summary": f"SUMMARY: {text}"[:29]}) for text in texts
        )
        custom_ids = messages_server.batched_custom_ids()
        assert len(custom_ids) == runs
        assert len(set(custom_ids)) == runs  # none submitted twice
        assert len(messages_server.batches()) == 1
        assert not [r for r in messages_server.requests() if r["path"] == "/v1/messages"]
        # The batch has ended: its collector retires.
        for _ in range(200):
            try:
                ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the batch's collector was not retired")
    finally:
        await runtime.close()
        backend.shutdown_hosts()
