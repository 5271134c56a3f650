"""Batches on Ray (issue 13.5): items reach the hosts in chunks, one Ray call per chunk and
host, hosts are filled evenly, and idempotency keys hold across hosts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from flue_actors import Runtime
from flue_actors._runtime.ray import RayBackend

pytestmark = pytest.mark.ray

ITEMS = 600


async def test_a_batch_reaches_its_hosts_in_chunks_and_fills_them_evenly(
    ray_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ray_runtime.backend
    assert isinstance(backend, RayBackend)
    handed: list[tuple[str, int]] = []
    hand_over = backend._hand_over

    async def counted(owner: str, batch: list[Any]) -> None:
        handed.append((owner, len(batch)))
        await hand_over(owner, batch)

    monkeypatch.setattr(backend, "_hand_over", counted)
    inputs = ({"text": f"doc {n}", "id": n} for n in range(ITEMS))
    items = [
        item async for item in ray_runtime.batch("summarize", inputs, concurrency=ITEMS, key="id")
    ]

    assert len(items) == ITEMS
    assert {item.status for item in items} == {"completed"}
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
