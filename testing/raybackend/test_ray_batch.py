"""Batches on Ray (issue 13.5): items reach the hosts in chunks, one Ray call per chunk and
host, which brings the chunk's records back as its runs end, hosts are filled evenly,
idempotency keys hold across hosts, and a host that dies mid-batch loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flue_actors import Runtime
from flue_actors._runtime.batch_item import BatchItem
from flue_actors._runtime.ray import NAMESPACE, RayBackend, RayCluster

pytestmark = pytest.mark.ray

ITEMS = 600


async def test_a_batch_reaches_its_hosts_in_chunks_and_fills_them_evenly(
    ray_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ray_runtime.backend
    assert isinstance(backend, RayBackend)
    handed: list[tuple[str, int]] = []
    hand_over = backend._hand_over

    async def counted(owner: str, batch: list[Any], meter: str | None = None) -> None:
        handed.append((owner, len(batch)))
        await hand_over(owner, batch, meter)

    monkeypatch.setattr(backend, "_hand_over", counted)
    waited: list[str] = []
    wait = ray_runtime.wait

    async def followed(run_id: str, **options: Any) -> Any:
        waited.append(run_id)
        return await wait(run_id, **options)

    monkeypatch.setattr(ray_runtime, "wait", followed)
    inputs = ({"text": f"doc {n}", "id": n} for n in range(ITEMS))
    items = [
        item async for item in ray_runtime.batch("summarize", inputs, concurrency=ITEMS, key="id")
    ]

    assert len(items) == ITEMS
    assert {item.status for item in items} == {"completed"}
    # The records came back with their chunks' calls, none followed through the log, and each
    # is the record the store holds.
    assert waited == []
    for item in items[:: ITEMS // 20]:
        assert item.record == await ray_runtime.get_run(item.run_id or "")
    assert sorted(item.index for item in items) == list(range(ITEMS))
    assert sum(size for _, size in handed) == ITEMS
    # A Ray call per chunk and host, not per run: chunks of up to 256 split over the hosts.
    assert len(handed) <= 2 * len(backend.host_names) * (ITEMS // 256 + 1)
    assert max(size for _, size in handed) <= 256
    owners = Counter([await ray_runtime.store.owner_of(item.run_id or "") for item in items])
    assert set(owners) == set(backend.host_names)
    assert min(owners.values()) >= ITEMS / len(owners) * 0.8  # placement hashes run ids

    # The same keys again: every run is found where it ran, none is admitted anew.
    handed.clear()
    inputs = ({"text": f"doc {n}", "id": n} for n in range(ITEMS))
    again = [item async for item in ray_runtime.batch("summarize", inputs, key="id")]
    assert all(item.resumed for item in again)
    assert {item.run_id for item in again} == {item.run_id for item in items}
    assert handed == []


KILLED_ITEMS = 160
# Half of them at a time: some are admitted after the kill, while its runs are in flight.
KILLED_CONCURRENCY = 80


async def test_a_host_killed_mid_batch_loses_nothing(ray_cluster: Any, project: Path) -> None:
    import ray

    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        lease_seconds=3,
        sweep_seconds=0.2,
    )
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    items: list[BatchItem] = []

    async def consume() -> None:
        inputs = ({"seconds": 1.0, "id": n} for n in range(KILLED_ITEMS))
        async for item in runtime.batch(
            "sleeper", inputs, concurrency=KILLED_CONCURRENCY, key="id"
        ):
            items.append(item)

    try:
        await runtime.serve()
        batch = asyncio.ensure_future(consume())
        deadline = time.monotonic() + 30
        while True:  # the runs sleep in their hosts: the batch is in the middle
            active = (await runtime.list_runs(status="active", limit=1000)).runs
            if len(active) >= KILLED_CONCURRENCY // 2:
                break
            assert time.monotonic() < deadline, "the batch did not get going"
            await asyncio.sleep(0.05)
        victim = await runtime.store.owner_of(active[0].run_id)
        assert victim in backend.host_names
        on_victim = [
            run.run_id for run in active if await runtime.store.owner_of(run.run_id) == victim
        ]
        ray.kill(ray.get_actor(victim, namespace=NAMESPACE), no_restart=True)
        await asyncio.wait_for(batch, 60)

        # One item per input, each completed by one run; the killed host's runs were resumed
        # elsewhere by replay once its lease expired.
        assert sorted(item.index for item in items) == list(range(KILLED_ITEMS))
        assert {item.status for item in items} == {"completed"}, [i.error for i in items]
        run_ids = {item.run_id for item in items}
        assert len(run_ids) == KILLED_ITEMS
        assert len((await runtime.list_runs(limit=1000)).runs) == KILLED_ITEMS
        for run_id in on_victim:
            assert await runtime.store.owner_of(run_id) != victim
            types = [event["type"] for event in await runtime.events(run_id)]
            assert "run_resume" in types
            assert types.count("run_end") == 1
    finally:
        await runtime.close()
        backend.shutdown_hosts()
