"""How the harness retries transient model errors (Flue's MAX_TRANSIENT_MODEL_RETRIES)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from ..errors import ModelRequestError

__all__ = ["MAX_TRANSIENT_MODEL_RETRIES", "RetryPolicy", "Sleep"]

MAX_TRANSIENT_MODEL_RETRIES = 3

Sleep: TypeAlias = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient :class:`ModelRequestError` s: up to ``max_retries`` after the first
    attempt, waiting ``round(2000 * 2**(attempt-1) * (0.75 + 0.25 * jitter()))`` ms before
    retry ``attempt`` (1-based), or the error's ``retry_after`` when that is longer.

    ``sleep`` and ``jitter`` are injectable so tests neither wait nor depend on chance: the kit
    records the sleeps and returns at once.
    """

    max_retries: int = MAX_TRANSIENT_MODEL_RETRIES
    sleep: Sleep = field(default=asyncio.sleep)
    jitter: Callable[[], float] = field(default=random.random)

    def delay_ms(self, attempt: int, error: ModelRequestError) -> int:
        delay = round(2000 * (1 << (attempt - 1)) * (0.75 + 0.25 * self.jitter()))
        if error.retry_after is not None:
            delay = max(delay, round(error.retry_after * 1000))
        return delay
