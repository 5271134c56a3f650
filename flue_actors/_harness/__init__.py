"""The agent harness: sessions, operations, tools and the sandbox filesystem."""

from ..sandbox._workspace import FileStat, MemoryFs
from .call import CallHandle
from .harness import Harness, Sessions
from .log import RunLog
from .session import ModelRef, PromptResponse, PromptResultResponse, Session
from .sink import EventSink

__all__ = [
    "CallHandle",
    "EventSink",
    "FileStat",
    "Harness",
    "MemoryFs",
    "ModelRef",
    "PromptResponse",
    "PromptResultResponse",
    "RunLog",
    "Session",
    "Sessions",
]
