"""Model providers and how ``provider/model`` strings find them."""

from .anthropic import AnthropicProvider
from .base import (
    THINKING_LEVELS,
    Cost,
    ModelLimits,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamEvent,
    StreamListener,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingLevel,
    ThinkingStart,
    ToolSpec,
    Usage,
    model_limits,
)
from .batched_provider import MessageBatchesProvider
from .echo import FakeProvider
from .limits import LimitedProvider, MinuteBudget, RateLimiter, RateLimits
from .message_batches import BatchedResult, MessageBatchCollector, ModelBatches, TurnBatcher
from .registry import ModelRegistry, ResolvedModel
from .retry import MAX_TRANSIENT_MODEL_RETRIES, RetryPolicy, Sleep

__all__ = [
    "MAX_TRANSIENT_MODEL_RETRIES",
    "THINKING_LEVELS",
    "AnthropicProvider",
    "BatchedResult",
    "Cost",
    "FakeProvider",
    "LimitedProvider",
    "MessageBatchCollector",
    "MessageBatchesProvider",
    "MinuteBudget",
    "ModelBatches",
    "ModelLimits",
    "ModelProvider",
    "ModelRegistry",
    "ModelRequest",
    "ModelResponse",
    "RateLimiter",
    "RateLimits",
    "ResolvedModel",
    "RetryPolicy",
    "Sleep",
    "StopReason",
    "StreamEvent",
    "StreamListener",
    "TextDelta",
    "ThinkingDelta",
    "ThinkingEnd",
    "ThinkingLevel",
    "ThinkingStart",
    "ToolSpec",
    "TurnBatcher",
    "Usage",
    "model_limits",
]
