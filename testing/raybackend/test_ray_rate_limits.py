"""Rate limits over a whole batch on Ray (issue 13.4): one budget for every host, taken in
slices, and a cool-down from any host holding back the others."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flue_actors import Runtime
from flue_actors._runtime.ray import RayBackend, RayCluster
from flue_actors._runtime.ray.rate_limiter import RayRateLimiter, limiter_actor
from flue_actors.models import RateLimits

pytestmark = pytest.mark.ray

PER_MINUTE = 240  # a minute's burst of 240 requests, then 4 a second
RUNS = PER_MINUTE + 8  # one model call each: the last 8 wait about 2 s, whichever host runs them


async def test_one_budget_paces_the_model_calls_of_every_host(
    ray_cluster: Any, project: Path
) -> None:
    import ray

    limits = RateLimits(requests_per_minute=PER_MINUTE)
    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(rate_limits=limits),
    )
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    name = backend.deployment.rate_limiter
    assert name is not None
    try:
        started = time.monotonic()
        inputs = ({"text": f"doc {n}"} for n in range(RUNS))
        items = [item async for item in runtime.batch("summarize", inputs, concurrency=RUNS)]
        elapsed = time.monotonic() - started
        assert {item.status for item in items} == {"completed"}
        owners = Counter([await runtime.store.owner_of(item.run_id or "") for item in items])
        assert set(owners) == set(backend.host_names)
        assert len(owners) == 2
        stats = await backend.rate_limit_stats()
        assert stats is not None
        # Each host alone would have had a minute's burst of its own: no call would have waited.
        assert stats["throttled_seconds"] >= 1.5
        assert elapsed >= 1.5
        # Slices of two requests (half a second of 4/s), not a Ray call per model call.
        assert stats["slices"] <= RUNS / 2 + 2 * len(owners)
    finally:
        await runtime.close()
        backend.shutdown_hosts()
        ray.kill(limiter_actor(name, limits))


async def test_a_cool_down_from_one_host_holds_back_the_others(ray_cluster: Any) -> None:
    import ray

    name = "test-" + secrets.token_hex(4)
    limits = RateLimits(requests_per_minute=600)  # slices of 5 requests
    one, other = RayRateLimiter(name, limits), RayRateLimiter(name, limits)
    try:
        for _ in range(5):
            await other.acquire(10)
        assert (await other.stats())["slices"] == 1  # five calls, one Ray call
        await one.cool_down(1.0)  # a 429 on one host
        started = time.monotonic()
        await other.acquire(10)  # its slice is spent: the next waits out the cool-down
        assert time.monotonic() - started >= 0.9
        stats = await one.stats()
        assert stats["cooldowns"] == 1
        assert stats["slices"] == 2
        assert stats["throttled_seconds"] >= 0.9
    finally:
        ray.kill(limiter_actor(name, limits))
