"""The messages of a conversation, as Flue's events carry them and providers are sent them.

These are pi-ai's shapes, which Flue's events use: a ``user`` message (text and images), an
``assistant`` message (text, thinking and tool calls, with the model and usage that produced
it) and a ``toolResult`` message (one per tool call). They are plain JSON objects at run time;
the ``TypedDict`` classes give them static types. Providers translate them to and from their
own API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast

__all__ = [
    "AssistantContent",
    "AssistantMessage",
    "ImageContent",
    "Message",
    "TextContent",
    "ThinkingContent",
    "ToolCall",
    "ToolResultMessage",
    "UserContent",
    "UserMessage",
    "as_json",
    "assistant_content",
]


class TextContent(TypedDict):
    type: Literal["text"]
    text: str


class ImageContent(TypedDict):
    """An image, base64 in ``data``; events show it with the data omitted."""

    type: Literal["image"]
    data: str
    mimeType: str


class ThinkingContent(TypedDict):
    type: Literal["thinking"]
    thinking: str
    # The provider's proof of the reasoning, sent back with it on the next request.
    thinkingSignature: NotRequired[str]
    # The provider returned the reasoning encrypted: ``thinking`` is a placeholder.
    redacted: NotRequired[bool]


class ToolCall(TypedDict):
    type: Literal["toolCall"]
    id: str
    name: str
    arguments: dict[str, Any]


UserContent: TypeAlias = TextContent | ImageContent
AssistantContent: TypeAlias = TextContent | ThinkingContent | ToolCall


class CompactionSummaryParts(TypedDict):
    history: str | None
    steps: str | None


class UserMessage(TypedDict):
    role: Literal["user"]
    content: list[UserContent]
    timestamp: int
    # Marks the summary a compaction wrote, so the next compaction folds it in.
    compactionSummary: NotRequired[CompactionSummaryParts]


class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: list[AssistantContent]
    api: str
    provider: str
    model: str
    # ``Usage.to_wire()``: input, output, cacheRead, cacheWrite, totalTokens, cost.
    usage: dict[str, Any]
    stopReason: str
    timestamp: int


class ToolResultMessage(TypedDict):
    role: Literal["toolResult"]
    toolCallId: str
    toolName: str
    content: list[UserContent]
    isError: bool
    timestamp: int


Message: TypeAlias = UserMessage | AssistantMessage | ToolResultMessage


# Where typed messages meet APIs typed over any JSON object (ModelRequest.messages,
# ModelResponse.content, Session.messages): the objects are the same, only their static type
# changes, so nothing is copied.


def as_json(messages: list[Message]) -> list[dict[str, Any]]:
    """``messages`` as the plain JSON objects they are."""
    return cast(list[dict[str, Any]], messages)


def assistant_content(blocks: Sequence[dict[str, Any]]) -> list[AssistantContent]:
    """A provider's answer (``ModelResponse.content``: text, thinking and toolCall blocks, as
    the provider protocol requires) as an assistant message's content."""
    return cast(list[AssistantContent], blocks)
