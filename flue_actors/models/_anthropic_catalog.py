"""What the Anthropic provider knows per model: prices, context and output limits, thinking
budgets.

Prices are USD per million tokens as published on anthropic.com/pricing (cache writes at the
5-minute TTL rate). A model id is looked up without its date suffix, so
``claude-haiku-4-5-20251001`` prices as ``claude-haiku-4-5``. A model not in the table still
works: its cost is reported as 0 (we would rather say nothing than guess a price), its output
limit is the conservative default, its context window the 200,000 tokens every Claude model
offers, and it is assumed to support extended thinking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._base import Cost, ThinkingLevel, Usage

__all__ = [
    "BATCH_PRICE_FACTOR",
    "CONTEXT_WINDOW",
    "DEFAULT_MAX_TOKENS",
    "THINKING_BUDGETS",
    "ModelInfo",
    "cost_of",
    "model_info",
    "thinking_budget",
]

# Output tokens asked for when the request does not say: enough for a long answer, small enough
# that every Claude model accepts it.
DEFAULT_MAX_TOKENS = 8192

# The input window of every model below without the 1M-token beta header, which this provider
# does not send.
CONTEXT_WINDOW = 200_000

# Extended-thinking budget (``thinking.budget_tokens``) per thinking level; ``off`` sends no
# thinking block. The API's minimum budget is 1024. These are pi-ai's budgets (Flue's model
# layer), with ``xhigh`` doubling ``high``. ``None`` (no level configured) means Flue's
# agent-loop default, ``medium``.
THINKING_BUDGETS: dict[ThinkingLevel, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    input: float  # USD per million input tokens
    output: float
    cache_read: float
    cache_write: float
    max_output: int  # the model's own ceiling for max_tokens
    thinking: bool = True  # supports extended thinking
    context_window: int = CONTEXT_WINDOW


_MODELS: dict[str, ModelInfo] = {
    "claude-haiku-4-5": ModelInfo(1.0, 5.0, 0.10, 1.25, 64000),
    "claude-sonnet-4-5": ModelInfo(3.0, 15.0, 0.30, 3.75, 64000),
    "claude-sonnet-4-6": ModelInfo(3.0, 15.0, 0.30, 3.75, 64000),
    "claude-sonnet-4": ModelInfo(3.0, 15.0, 0.30, 3.75, 64000),
    "claude-sonnet-4-0": ModelInfo(3.0, 15.0, 0.30, 3.75, 64000),
    "claude-3-7-sonnet": ModelInfo(3.0, 15.0, 0.30, 3.75, 64000),
    "claude-opus-4-6": ModelInfo(5.0, 25.0, 0.50, 6.25, 64000),
    "claude-opus-4-5": ModelInfo(5.0, 25.0, 0.50, 6.25, 64000),
    "claude-opus-4-1": ModelInfo(15.0, 75.0, 1.50, 18.75, 32000),
    "claude-opus-4": ModelInfo(15.0, 75.0, 1.50, 18.75, 32000),
    "claude-opus-4-0": ModelInfo(15.0, 75.0, 1.50, 18.75, 32000),
    "claude-3-5-haiku": ModelInfo(0.80, 4.0, 0.08, 1.0, 8192, thinking=False),
    "claude-3-haiku": ModelInfo(0.25, 1.25, 0.03, 0.30, 4096, thinking=False),
}

# The Message Batches API bills every token of a batched request at half the listed price.
BATCH_PRICE_FACTOR = 0.5

_UNKNOWN = ModelInfo(0.0, 0.0, 0.0, 0.0, DEFAULT_MAX_TOKENS)
_SUFFIX = re.compile(r"-(\d{8}|latest)$")


def model_info(model: str) -> ModelInfo:
    return _MODELS.get(_SUFFIX.sub("", model), _UNKNOWN)


def cost_of(model: str, usage: Usage, *, batched: bool = False) -> Usage:
    """``usage`` with its cost filled in from the price table (0 for unknown models), at batch
    prices when the turn went through the Message Batches API."""
    info = model_info(model)
    per_token = 1e-6 * (BATCH_PRICE_FACTOR if batched else 1.0)
    cost = Cost(
        input=usage.input * info.input * per_token,
        output=usage.output * info.output * per_token,
        cache_read=usage.cache_read * info.cache_read * per_token,
        cache_write=usage.cache_write * info.cache_write * per_token,
    )
    return Usage(usage.input, usage.output, usage.cache_read, usage.cache_write, cost)


def thinking_budget(model: str, level: ThinkingLevel | None) -> int | None:
    """The thinking budget to ask for, or None for no extended thinking."""
    if level == "off" or not model_info(model).thinking:
        return None
    return THINKING_BUDGETS[level or "medium"]
