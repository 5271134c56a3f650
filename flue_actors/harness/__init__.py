"""The agent harness: sessions, operations, tools and the sandbox filesystem."""

from .call import CallHandle
from .harness import Harness, Sessions
from .log import RunLog
from .session import ModelRef, PromptResponse, Session
from .sink import EventSink
from .workspace import FileStat, MemoryFs

__all__ = [
    "CallHandle",
    "EventSink",
    "FileStat",
    "Harness",
    "MemoryFs",
    "ModelRef",
    "PromptResponse",
    "RunLog",
    "Session",
    "Sessions",
]
