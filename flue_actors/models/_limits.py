"""Rate limits shared by every model call of a batch: requests, input and output tokens per
minute (the units of Anthropic's limits), and one cool-down for all after a 429 or 529.

:class:`RateLimiter` is what a provider call asks before it goes out and tells when it is back;
:class:`MinuteBudget` is the in-process one (token buckets refilled continuously over a minute).
A limiter shared by processes (Ray hosts) implements the same protocol elsewhere; this package
knows nothing of where its callers run. :class:`LimitedProvider` wraps any provider so that
each call passes through the limiter, and a 429 or 529 slows every caller instead of failing
the run: the call waits out the shared cool-down and goes again (at most ``max_cooldowns``
times, after which the error reaches the harness's own retries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..errors import ModelRequestError
from ._base import ModelProvider, ModelRequest, ModelResponse, ProviderWrapper, StreamListener

__all__ = ["LimitedProvider", "MinuteBudget", "RateLimiter", "RateLimits", "estimate_input_tokens"]

# A 529 without a hint cools everyone down this long, doubling per consecutive one.
OVERLOADED_SECONDS: Final = 1.0
MAX_COOLDOWN_SECONDS: Final = 60.0
_EPSILON_SECONDS: Final = 1e-6


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per minute; ``None``: no limit of that kind."""

    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.requests_per_minute,
                self.input_tokens_per_minute,
                self.output_tokens_per_minute,
            )
        )


class RateLimiter(Protocol):
    async def acquire(self, input_tokens: int) -> None:
        """Wait until a request of about ``input_tokens`` may go out."""
        ...

    async def settle(self, input_tokens: int, estimated_input: int, output_tokens: int) -> None:
        """A request came back having used these tokens (``estimated_input`` was acquired)."""
        ...

    async def cool_down(self, seconds: float) -> None:
        """The provider said to slow down: no request goes out for ``seconds`` from now."""
        ...


def estimate_input_tokens(request: ModelRequest) -> int:
    """About four characters a token, over the messages, system prompt and tools: enough to
    pace requests before the provider reports the real count (:meth:`RateLimiter.settle`)."""
    size = len(request.system_prompt or "")
    for message in request.messages:
        size += len(str(message.get("content", "")))
    for tool in request.tools:
        size += len(tool.name) + len(tool.description) + len(str(tool.parameters))
    return max(1, size // 4)


class _Bucket:
    """Up to ``per_minute`` units, refilled continuously; it may go into debt (a response
    that used more than estimated), which later callers wait out."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, units: float) -> float:
        """Seconds until ``units`` (at most a minute's worth) are available."""
        wanted = min(units, self.capacity)
        return 0.0 if self.level >= wanted else (wanted - self.level) / self.rate


class MinuteBudget:
    """The in-process limiter: token buckets per kind, one cool-down shared by all callers,
    and the seconds callers spent waiting (``throttled_seconds``). Callers are served in
    order of arrival (one waits at a time), so a large request is not starved by small ones.
    ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _bucket(limits.requests_per_minute, now)
        self._input = _bucket(limits.input_tokens_per_minute, now)
        self._output = _bucket(limits.output_tokens_per_minute, now)
        self._cool_until = 0.0
        self._turn: asyncio.Lock | None = None
        self.throttled_seconds = 0.0
        self.cooldowns = 0

    def _buckets(self) -> list[_Bucket]:
        return [bucket for bucket in (self._requests, self._input, self._output) if bucket]

    async def acquire(self, input_tokens: int, requests: int = 1) -> None:
        """Wait until ``requests`` requests of ``input_tokens`` in all may go out (more than one:
        a slice of the budget handed to another process, see the Ray backend's limiter)."""
        self._turn = self._turn or asyncio.Lock()
        async with self._turn:
            while True:
                now = self._clock()
                for bucket in self._buckets():
                    bucket.refill(now)
                waits = [self._cool_until - now]
                if self._requests is not None:
                    waits.append(self._requests.wait_for(requests))
                if self._input is not None:
                    waits.append(self._input.wait_for(input_tokens))
                if self._output is not None:
                    waits.append(self._output.wait_for(1))  # only a debt holds requests back
                wait = max(waits)
                if wait <= _EPSILON_SECONDS:  # float rounding must not leave it spinning
                    break
                # One caller waits at a time (the others queue on the lock), so the sum of
                # these sleeps is the wall-clock time the batch was held back.
                await self._sleep(wait)
                self.throttled_seconds += wait
            if self._requests is not None:
                self._requests.level -= requests
            if self._input is not None:
                self._input.level -= input_tokens

    async def settle(self, input_tokens: int, estimated_input: int, output_tokens: int) -> None:
        if self._input is not None:
            self._input.level -= input_tokens - estimated_input
        if self._output is not None:
            self._output.level -= output_tokens

    async def cool_down(self, seconds: float) -> None:
        self.cooldowns += 1
        self._cool_until = max(self._cool_until, self._clock() + seconds)

    def at_rest(self) -> bool:
        """Whether this budget is as a new one would be (every bucket full, no cool-down, no
        caller waiting): forgetting it loses nothing of the limits."""
        now = self._clock()
        for bucket in self._buckets():
            bucket.refill(now)
        if self._turn is not None and self._turn.locked():
            return False
        return now >= self._cool_until and all(
            bucket.level >= bucket.capacity for bucket in self._buckets()
        )


def _bucket(per_minute: float | None, now: float) -> _Bucket | None:
    return None if per_minute is None else _Bucket(per_minute, now)


class LimitedProvider(ProviderWrapper):
    """``inner`` with every call paced by ``limiter``; anything else is ``inner``'s."""

    def __init__(self, inner: ModelProvider, limiter: RateLimiter, *, max_cooldowns: int = 8):
        super().__init__(inner)
        self._limiter = limiter
        self._max_cooldowns = max_cooldowns

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        estimate = estimate_input_tokens(request)
        overloaded = 0
        for attempt in range(self._max_cooldowns + 1):
            await self._limiter.acquire(estimate)
            try:
                response = await self._inner.complete(request, on_stream)
            except ModelRequestError as error:
                await self._limiter.settle(0, estimate, 0)  # refused: it used nothing
                if error.code not in ("rate_limited", "overloaded"):
                    raise
                if attempt == self._max_cooldowns:
                    raise
                if error.code == "overloaded":
                    overloaded += 1
                    pause = OVERLOADED_SECONDS * 2 ** (overloaded - 1)
                else:
                    pause = OVERLOADED_SECONDS
                if error.retry_after is not None:
                    pause = max(pause, error.retry_after)
                await self._limiter.cool_down(min(pause, MAX_COOLDOWN_SECONDS))
                continue
            usage = response.usage
            await self._limiter.settle(usage.input + usage.cache_write, estimate, usage.output)
            return response
        raise AssertionError("unreachable")  # pragma: no cover
