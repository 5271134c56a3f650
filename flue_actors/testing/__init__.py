"""The pytest kit: test workflows deterministically, with a scripted model.

The fixtures ``flue`` and ``fake_model`` are registered automatically when flue_actors is
installed. Outside pytest, build a :class:`FlueTestKit` yourself.
"""

from .anthropic_api import AnthropicApi, AnthropicApiExhaustedError
from .fake_model import (
    FakeFailure,
    FakeModel,
    FakeModelExhaustedError,
    FakeToolCall,
    FakeTurn,
    Responder,
)
from .kit import FlueTestKit, RunResult
from .sink import RecordingSink

__all__ = [
    "AnthropicApi",
    "AnthropicApiExhaustedError",
    "FakeFailure",
    "FakeModel",
    "FakeModelExhaustedError",
    "FakeToolCall",
    "FakeTurn",
    "FlueTestKit",
    "RecordingSink",
    "Responder",
    "RunResult",
]
