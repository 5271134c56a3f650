"""The model provider protocol: one request in, streamed detail out, one assistant turn back.

Messages use the shapes Flue's events carry (pi-ai's): ``{"role": "user", "content": [...]}``,
assistant messages with ``text`` / ``thinking`` / ``toolCall`` blocks, and ``toolResult``
messages. Providers translate to and from their own API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, get_args

__all__ = [
    "THINKING_LEVELS",
    "Cost",
    "ModelLimits",
    "ModelProvider",
    "ModelRequest",
    "ModelResponse",
    "ProviderWrapper",
    "StopReason",
    "StreamEvent",
    "StreamListener",
    "TextDelta",
    "ThinkingDelta",
    "ThinkingEnd",
    "ThinkingLevel",
    "ThinkingStart",
    "ToolSpec",
    "Usage",
    "model_limits",
]

# How hard the model reasons before answering: a request setting, defaulted per agent and
# overridable per call.
ThinkingLevel: TypeAlias = Literal["off", "minimal", "low", "medium", "high", "xhigh"]
THINKING_LEVELS: tuple[ThinkingLevel, ...] = get_args(ThinkingLevel)

StopReason: TypeAlias = Literal["stop", "length", "toolUse", "error", "aborted"]


@dataclass(frozen=True, slots=True)
class Cost:
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    @property
    def total(self) -> float:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one or more model turns; ``+`` sums them."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost: Cost = field(default_factory=Cost)

    @property
    def total_tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.cost + other.cost,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write,
            "totalTokens": self.total_tokens,
            "cost": {
                "input": self.cost.input,
                "output": self.cost.output,
                "cacheRead": self.cost.cache_read,
                "cacheWrite": self.cost.cache_write,
                "total": self.cost.total,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: a name, a description and a JSON schema for arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: Sequence[dict[str, Any]]
    system_prompt: str | None = None
    tools: Sequence[ToolSpec] = ()
    thinking_level: ThinkingLevel | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One assistant turn: content blocks (``text``, ``thinking``, ``toolCall``) and accounting."""

    content: list[dict[str, Any]]
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason = "stop"
    response_id: str | None = None
    response_model: str | None = None
    error_message: str | None = None
    # Set when the turn went through the Message Batches API: where its answer came from.
    batch_id: str | None = None
    custom_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(block["text"] for block in self.content if block.get("type") == "text")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "toolCall"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingStart:
    content_index: int | None = None


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    delta: str
    content_index: int | None = None


@dataclass(frozen=True, slots=True)
class ThinkingEnd:
    content: str
    content_index: int | None = None


StreamEvent: TypeAlias = TextDelta | ThinkingStart | ThinkingDelta | ThinkingEnd
StreamListener: TypeAlias = Callable[[StreamEvent], None]


class ModelProvider(Protocol):
    """A source of assistant turns. ``name`` is the ``provider`` part of ``provider/model``."""

    @property
    def name(self) -> str: ...

    @property
    def api(self) -> str: ...

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        """Produce one assistant turn, reporting streamed detail to ``on_stream`` as it arrives.
        Cancellation (``asyncio.CancelledError``) must stop the call promptly."""
        ...


class ProviderWrapper:
    """A provider around ``inner`` (pacing it, counting it): its name, api and anything else
    (``limits()``, ``aclose()``, ``batcher``) are ``inner``'s; subclasses define ``complete``."""

    def __init__(self, inner: ModelProvider) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def api(self) -> str:
        return self._inner.api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What a model can take and give in one call, in tokens; 0 when the provider does not
    know. Automatic compaction needs the window: with none known it compacts only when the
    provider reports a context overflow."""

    context_window: int = 0
    max_output: int = 0


def model_limits(provider: ModelProvider, model: str) -> ModelLimits:
    """``provider``'s limits for ``model``. Knowing them is optional for a provider: one that
    can say defines ``limits(model) -> ModelLimits``."""
    limits = getattr(provider, "limits", None)
    if not callable(limits):
        return ModelLimits()
    found = limits(model)
    return found if isinstance(found, ModelLimits) else ModelLimits()
