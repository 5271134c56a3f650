"""Rate limits over a whole batch on Ray (issue 13.4): one budget for every host, taken in
slices, a cool-down from any host holding back the others, and ``flue-actors batch --address``
pacing every host's calls."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from flue_actors._runtime.ray.rate_limiter import RayRateLimiter, limiter_actor
from flue_actors.models import RateLimits
from flue_actors.store import open_store

pytestmark = pytest.mark.ray

PER_MINUTE = 240  # a minute's burst of 240 requests, then 4 a second
# One model call each: the last 24 wait about 6 s, whichever host runs them, less what the
# bucket refills while the burst goes out (about a second here; 4 on a slow day).
RUNS = PER_MINUTE + 24


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


async def test_the_budgets_actor_exits_once_idle_and_at_rest_and_is_made_again(
    ray_cluster: Any,
) -> None:
    import asyncio

    import ray

    from flue_actors._runtime.ray import NAMESPACE
    from flue_actors._runtime.ray.rate_limiter import LIMITER_PREFIX

    def alive() -> bool:
        named = ray.util.list_named_actors(all_namespaces=True)
        return {"name": LIMITER_PREFIX + name, "namespace": NAMESPACE} in named

    name = "test-" + secrets.token_hex(4)
    limits = RateLimits(requests_per_minute=120)  # slices of one request: a call each
    limiter = RayRateLimiter(name, limits, idle_seconds=1.0)
    await limiter.acquire(10)
    await limiter.cool_down(4.0)  # a 429: not at rest until it ends, however idle
    await asyncio.sleep(2.0)
    assert alive(), "it exited while a cool-down was pending"
    for _ in range(100):  # it looks every quarter of its idle time
        if not alive():
            break
        await asyncio.sleep(0.1)
    assert not alive(), "idle and at rest, it did not exit"
    # The next call makes it again: a new budget, as the old one was at rest.
    await limiter.acquire(10)
    assert alive()
    assert (await limiter.stats())["slices"] == 1
    ray.kill(limiter_actor(name, limits))


async def test_flue_actors_batch_on_ray_paces_every_host_and_says_how_long(
    ray_cluster: Any, tmp_path: Path
) -> None:
    import asyncio

    import ray
    from cli.conftest import describe, make_project

    from flue_actors._runtime.ray import NAMESPACE
    from flue_actors._runtime.ray.rate_limiter import LIMITER_PREFIX

    def ours() -> set[str]:
        return {
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["namespace"] == NAMESPACE
            and actor["name"].startswith(("flue-host-", LIMITER_PREFIX))
        }

    before = ours()
    project = make_project(tmp_path, workflows=["summarize"])
    lines = "".join(f'{{"text": "doc {n}"}}\n' for n in range(RUNS))
    (project.root / "in.jsonl").write_text(lines, encoding="utf-8")
    try:
        result = await asyncio.to_thread(
            project.run,
            *("batch", "summarize", "in.jsonl", "--output", "out.jsonl"),
            *("--address", ray_cluster.address, "--max-requests-per-minute", str(PER_MINUTE)),
            env={"FLUE_MODEL": "fake/echo"},
            timeout=120,
        )
        assert result.returncode == 0, describe(result)
        out = (project.root / "out.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(out) == RUNS
        assert f"{RUNS} completed, 0 failed" in result.stderr
        match = re.search(r"throttled (\d+\.\d)s \(0 cool-downs\)", result.stderr)
        assert match is not None, describe(result)
        # Each host alone would have had a minute's burst of its own: no call would have waited.
        # Shared, the last 24 wait 6 s, less what the bucket refilled while the burst went out.
        assert float(match.group(1)) >= 2.0
        # Counted in the hosts, for this batch: fake/echo reports a token in per message and a
        # token out per word ("doc 4"), as the local path counts them.
        assert f"tokens {RUNS} in / {2 * RUNS} out" in result.stderr.splitlines()[-1]
        (limiter,) = [name for name in ours() - before if name.startswith(LIMITER_PREFIX)]
        hosts = [name for name in ours() - before if name.startswith("flue-host-")]
        store = open_store(project.database_url or "")
        try:
            owners = {await store.owner_of(json.loads(line)["runId"]) for line in out}
        finally:
            await store.close()
        assert owners == set(hosts)  # the calls of both hosts were paced
        assert len(hosts) == 2
        stats = await ray.get_actor(limiter, namespace=NAMESPACE).stats.remote()
        # Slices of two requests (half a second of 4/s), not a Ray call per model call.
        assert stats["slices"] <= RUNS / 2 + 2 * len(hosts)
    finally:
        for name in ours() - before:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
