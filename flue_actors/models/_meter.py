"""The tokens and cost of every model call a registry's providers answer, counted as each call
returns (``ModelRegistry(meter=...)``): a batch's running totals without reading any run's log.

It counts calls made in this process since it was made: turns a resumed run replays from its
log cost nothing again and are not counted, so the totals are what this process spent.
"""

from __future__ import annotations

from ._base import (
    Cost,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ProviderWrapper,
    StreamListener,
    Usage,
)

__all__ = ["MeteredProvider", "UsageMeter"]


class UsageMeter:
    """Running totals of model usage (plain counters: ``add`` runs once per model call)."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "calls",
        "cost_cache_read",
        "cost_cache_write",
        "cost_input",
        "cost_output",
        "input",
        "output",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.input = self.output = self.cache_read = self.cache_write = 0
        self.cost_input = self.cost_output = self.cost_cache_read = self.cost_cache_write = 0.0

    def add(self, usage: Usage) -> None:
        self.calls += 1
        self.input += usage.input
        self.output += usage.output
        self.cache_read += usage.cache_read
        self.cache_write += usage.cache_write
        cost = usage.cost
        self.cost_input += cost.input
        self.cost_output += cost.output
        self.cost_cache_read += cost.cache_read
        self.cost_cache_write += cost.cache_write

    @property
    def total(self) -> Usage:
        return Usage(
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            Cost(self.cost_input, self.cost_output, self.cost_cache_read, self.cost_cache_write),
        )


class MeteredProvider(ProviderWrapper):
    """``inner`` with the usage of every response it returns added to ``meter``."""

    def __init__(self, inner: ModelProvider, meter: UsageMeter) -> None:
        super().__init__(inner)
        self._meter = meter

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        response = await self._inner.complete(request, on_stream)
        self._meter.add(response.usage)
        return response
