"""When a conversation must be compacted: the agent's compaction settings for a model, how many
tokens the conversation holds, and the threshold (reference 1.3 ``compaction``).

The count is the last successful model response's own usage (what the provider counted for the
request and its answer) plus an estimate for every message added since; with no such response
yet, or after a compaction made it stale, the whole conversation is estimated. The estimate is
4 characters per token, as Flue's is: rough, and on the high side for English text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._definitions import CompactionConfig
from .._jsonvalue import dumps
from ..models import ModelLimits

__all__ = [
    "DEFAULT_KEEP_RECENT_TOKENS",
    "DEFAULT_RESERVE_TOKENS",
    "CompactionSettings",
    "context_tokens",
    "estimate_message_tokens",
    "estimate_tokens",
    "resolve_settings",
]

DEFAULT_RESERVE_TOKENS = 20_000
DEFAULT_KEEP_RECENT_TOKENS = 8_000
# The smallest reserve derived for a small window (an explicit one is taken as given).
_MIN_DERIVED_RESERVE = 1024
# An image costs about this much whatever its size (the API scales large images down).
_IMAGE_CHARS = 4800


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """Resolved settings for one model: compact when the context passes ``context_window -
    reserve_tokens`` (never when the window is unknown, 0), keeping ``keep_recent_tokens``."""

    context_window: int
    reserve_tokens: int
    keep_recent_tokens: int
    model: str | None = None

    def exceeded(self, tokens: int) -> bool:
        return self.context_window > 0 and tokens > self.context_window - self.reserve_tokens


# Depends on definitions only (an agent's config, a model's limits; both immutable): resolved
# once per pair instead of before every model turn.
@functools.lru_cache(maxsize=256)
def resolve_settings(
    config: CompactionConfig | Literal[False] | None, limits: ModelLimits
) -> CompactionSettings | None:
    """The settings ``config`` gives for a model with ``limits``; None when it is ``False``.

    The default reserve is 20,000 tokens, no more than the model can write in one answer
    (reserving more than one answer needs only wastes context), and for a window so small that
    the reserve would take half of it, a third of the window: Flue's derivation."""
    if config is False:
        return None
    config = config or CompactionConfig()
    window = max(limits.context_window, 0)
    reserve = config.reserve_tokens
    if reserve is None:
        cap = limits.max_output if limits.max_output > 0 else DEFAULT_RESERVE_TOKENS
        reserve = min(DEFAULT_RESERVE_TOKENS, cap)
        if window > 0 and reserve * 2 >= window:
            reserve = max(_MIN_DERIVED_RESERVE, window // 3)
    keep = config.keep_recent_tokens
    return CompactionSettings(
        context_window=window,
        reserve_tokens=reserve,
        keep_recent_tokens=DEFAULT_KEEP_RECENT_TOKENS if keep is None else keep,
        model=config.model,
    )


def estimate_message_tokens(message: Mapping[str, Any]) -> int:
    """A message's size in tokens, estimated from what the model reads of it."""
    chars = 0
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            chars += len(block.get("text") or "")
        elif kind == "thinking":
            chars += len(block.get("thinking") or "")
        elif kind == "toolCall":
            chars += len(block.get("name") or "") + len(dumps(block.get("arguments") or {}))
        elif kind == "image":
            chars += _IMAGE_CHARS
    return math.ceil(chars / 4)


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(estimate_message_tokens(message) for message in messages)


def _counted(message: Mapping[str, Any]) -> int:
    # The tokens a successful response's usage says its request and answer held; 0 for a
    # failed turn and for the harness's own tool-call records (shell), which report none.
    if message.get("role") != "assistant" or message.get("stopReason") in ("error", "aborted"):
        return 0
    usage = message.get("usage") or {}
    total = usage.get("totalTokens")
    if not isinstance(total, int):
        parts = ("input", "output", "cacheRead", "cacheWrite")
        total = sum(value for key in parts if isinstance(value := usage.get(key), int))
    return total


def context_tokens(messages: Sequence[Mapping[str, Any]], counted_from: int = 0) -> int:
    """The conversation's size in tokens: the usage of the last response at or after
    ``counted_from`` (earlier ones describe a conversation since compacted) plus an estimate
    of the messages after it, else an estimate of all of it."""
    for index in range(len(messages) - 1, counted_from - 1, -1):
        counted = _counted(messages[index])
        if counted > 0:
            return counted + estimate_tokens(messages[index + 1 :])
    return estimate_tokens(messages)
