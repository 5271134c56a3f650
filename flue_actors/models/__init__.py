"""Model providers and how ``provider/model`` strings find them."""

from .base import (
    Cost,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamEvent,
    StreamListener,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingStart,
    ToolSpec,
    Usage,
)
from .echo import FakeProvider
from .registry import ModelRegistry, ResolvedModel

__all__ = [
    "Cost",
    "FakeProvider",
    "ModelProvider",
    "ModelRegistry",
    "ModelRequest",
    "ModelResponse",
    "ResolvedModel",
    "StopReason",
    "StreamEvent",
    "StreamListener",
    "TextDelta",
    "ThinkingDelta",
    "ThinkingEnd",
    "ThinkingStart",
    "ToolSpec",
    "Usage",
]
