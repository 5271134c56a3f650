"""Model providers and how ``provider/model`` strings find them."""

from .. import _lazy
from ._anthropic import AnthropicProvider
from ._base import (
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
from ._batched_provider import MessageBatchesProvider
from ._echo import FakeProvider
from ._limits import LimitedProvider, MinuteBudget, RateLimiter, RateLimits
from ._message_batches import BatchedResult, MessageBatchCollector, ModelBatches, TurnBatcher
from ._meter import UsageMeter
from ._registry import ModelRegistry, ResolvedModel
from ._retry import MAX_TRANSIENT_MODEL_RETRIES, RetryPolicy, Sleep

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
    "UsageMeter",
    "model_limits",
]

_lazy.publish(__name__)
