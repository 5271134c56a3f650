"""Rate limits shared by every host of a deployment: one budget in a named Ray actor, taken by
hosts in slices.

:class:`RateLimiterActor` holds the deployment's :class:`~flue_actors.models.MinuteBudget`
(requests and tokens per minute, and the cool-down after a 429 or 529). :class:`RayRateLimiter`
is the :class:`~flue_actors.models.RateLimiter` a host's registry paces its model calls with:
it takes the budget from the actor a slice at a time (about ``SLICE_SECONDS`` of the limit, at
least one request), so a model call costs a Ray round trip only when its host's slice is spent,
and hands the tokens responses reported back with its next slice. A 429 or 529 on any host
cools the actor down at once: every host's next slice waits it out, so the whole deployment
slows down within one slice. Budget a host took and did not use before the batch ended is
lost, never lent twice: the limits hold however the calls spread over the hosts.

A deployment with limits names its actor after itself (``Deployment.rate_limiter``): serves and
batches of one deployment share the budget, as they share the API key whose limits it mirrors.
The actor is detached (it outlives the batch that made it), so it exits by itself once nobody
has called it for ``IDLE_SECONDS`` and its budget is at rest (as a new one would be): a batch
with other limits is another deployment, and a cluster started with ``ray start`` would
otherwise keep one idle actor process per limits ever used. The next call makes it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ...errors import ModelRequestError
from ...models import MinuteBudget, RateLimits
from .environment import shared_actor

__all__ = ["LIMITER_PREFIX", "RateLimiterActor", "RayRateLimiter"]

LIMITER_PREFIX: Final = "flue-rate-limits-"
# A host takes about this long's worth of the limit at a time.
SLICE_SECONDS: Final = 0.5
# Calls per slice when requests are not limited (tokens are): how often a host hears of debt.
_UNLIMITED_SLICE_REQUESTS: Final = 16
# Every host waiting for its next slice is one call in the actor.
_CONCURRENCY: Final = 10_000
# How long the actor waits, uncalled and at rest, before it exits.
IDLE_SECONDS: Final = 600.0
# Tries to reach the actor (an exited or dead one is made again in between).
_ATTEMPTS: Final = 10


class RateLimiterActor:
    """The shared budget (an async Ray actor). ``grant`` and ``cool_down`` answer ``False``
    once it is exiting (idle and at rest): the caller makes a new one."""

    def __init__(self, limits: RateLimits, idle_seconds: float = IDLE_SECONDS) -> None:
        self._budget = MinuteBudget(limits)
        self._slices = 0
        self._idle_seconds = idle_seconds
        self._last_call = time.monotonic()
        self._watcher: asyncio.Task[None] | None = None
        self._exiting = False

    def _called(self) -> bool:
        if self._exiting:
            return False
        self._last_call = time.monotonic()
        if self._watcher is None:  # the actor's loop runs its calls, not its __init__
            self._watcher = asyncio.get_running_loop().create_task(self._exit_when_idle())
        return True

    async def _exit_when_idle(self) -> None:
        import ray

        while True:
            idle_for = time.monotonic() - self._last_call
            if idle_for >= self._idle_seconds and self._budget.at_rest():
                break
            await asyncio.sleep(max(self._idle_seconds - idle_for, self._idle_seconds / 4))
        self._exiting = True
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    async def grant(
        self, requests: int, input_tokens: int, input_correction: int, output_tokens: int
    ) -> bool:
        """Settle what the caller's calls since its last slice reported, then wait until a
        slice of ``requests`` requests and ``input_tokens`` tokens may go out, and take it."""
        if not self._called():
            return False
        if input_correction or output_tokens:
            await self._budget.settle(input_correction, 0, output_tokens)
        await self._budget.acquire(input_tokens, requests)
        self._slices += 1
        self._last_call = time.monotonic()
        return True

    async def cool_down(self, seconds: float) -> bool:
        if not self._called():
            return False
        await self._budget.cool_down(seconds)
        return True

    async def stats(self) -> dict[str, float]:
        """Seconds slices were held back (wall clock: one waits at a time), cool-downs, and
        slices granted."""
        return {
            "throttled_seconds": self._budget.throttled_seconds,
            "cooldowns": float(self._budget.cooldowns),
            "slices": float(self._slices),
        }


def limiter_actor(name: str, limits: RateLimits, idle_seconds: float = IDLE_SECONDS) -> Any:
    """The actor named ``name`` in the cluster, made with ``limits`` if it does not exist."""
    return shared_actor(
        RateLimiterActor,
        LIMITER_PREFIX + name,
        limits,
        idle_seconds,
        max_concurrency=_CONCURRENCY,
    )


class RayRateLimiter:
    """A host's share of the budget named ``name``. ``clock`` and ``sleep`` are injectable;
    ``idle_seconds`` is how long the actor it makes waits, uncalled and at rest, to exit."""

    def __init__(
        self,
        name: str,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._name = name
        self._limits = limits
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._sleep = sleep
        self._actor: Any = None
        rpm, itpm = limits.requests_per_minute, limits.input_tokens_per_minute
        self._slice_requests = (
            _UNLIMITED_SLICE_REQUESTS if rpm is None else max(1, int(rpm * SLICE_SECONDS / 60))
        )
        self._slice_tokens = 0 if itpm is None else max(1, int(itpm * SLICE_SECONDS / 60))
        self._requests = 0  # of the slices taken, not yet used
        self._tokens = 0
        self._correction = 0  # to hand back with the next slice
        self._output = 0
        self._cool_until = 0.0
        self._refilling: asyncio.Lock | None = None

    def _covers(self, input_tokens: int) -> bool:
        if self._requests < 1:
            return False
        return self._limits.input_tokens_per_minute is None or self._tokens >= input_tokens

    async def acquire(self, input_tokens: int) -> None:
        while True:
            wait = self._cool_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            if self._covers(input_tokens):
                self._requests -= 1
                if self._limits.input_tokens_per_minute is not None:
                    self._tokens -= input_tokens
                return
            self._refilling = self._refilling or asyncio.Lock()
            async with self._refilling:  # one slice at a time; the others then use it
                if not self._covers(input_tokens):
                    await self._take_slice(input_tokens)

    async def _take_slice(self, input_tokens: int) -> None:
        requests = self._slice_requests
        tokens = 0
        if self._limits.input_tokens_per_minute is not None:
            tokens = max(input_tokens, self._slice_tokens)
        correction, output = self._correction, self._output
        self._correction = self._output = 0
        try:
            await self._call("grant", requests, tokens, correction, output)
        except BaseException:
            self._correction += correction  # not handed back: the next slice takes them
            self._output += output
            raise
        self._requests += requests
        self._tokens += tokens

    async def settle(self, input_tokens: int, estimated_input: int, output_tokens: int) -> None:
        self._correction += input_tokens - estimated_input
        self._output += output_tokens

    async def cool_down(self, seconds: float) -> None:
        self._cool_until = max(self._cool_until, self._clock() + seconds)
        await self._call("cool_down", seconds)

    async def stats(self) -> dict[str, float]:
        stats: dict[str, float] = await self._call("stats")
        return stats

    async def _call(self, method: str, *args: Any) -> Any:
        """A call to the actor, made again on a new one if it had exited (idle and at rest, so
        a new one is the same budget) or died (its node lost: a new one has a full budget)."""
        from ray.exceptions import RayActorError

        for attempt in range(_ATTEMPTS):
            if self._actor is None:
                self._actor = limiter_actor(self._name, self._limits, self._idle_seconds)
            try:
                answer = await getattr(self._actor, method).remote(*args)
            except RayActorError:
                answer = False
            if answer is not False:
                return answer
            # Until the exiting actor is gone its name still finds it: pause before asking.
            self._actor = None
            await self._sleep(min(0.02 * 2**attempt, 1.0))
        raise ModelRequestError(
            f"The rate-limit budget {self._name} could not be reached.",
            transient=True,
            code="rate_limiter_unavailable",
        )
