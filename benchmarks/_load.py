"""The load loop the benchmarks share: ``n`` calls with at most ``concurrency`` in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["concurrently"]


async def concurrently(
    n: int, concurrency: int, one: Callable[[int], Awaitable[object]]
) -> tuple[float, list[float]]:
    """Run ``one(0..n-1)`` with at most ``concurrency`` in flight; the elapsed seconds, and each
    call's latency in seconds (in completion order)."""
    latencies: list[float] = []
    indexes = iter(range(n))

    async def worker() -> None:
        for index in indexes:
            began = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return time.perf_counter() - began, latencies
