"""The pytest kit: test workflows deterministically, with a scripted model.

The fixtures ``flue``, ``fake_model`` and ``anthropic_api`` are registered automatically when
flue_actors is installed. Outside pytest, build a :class:`FlueTestKit` yourself. An event store
proves itself against :class:`EventStoreContract` (see :mod:`flue_actors.testing.store_contract`).

The names below load on first access: pytest loads this package's plugin in every run of an
environment where flue_actors is installed, and that must not cost a runtime, respx or httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .anthropic_api import AnthropicApi, AnthropicApiExhaustedError
    from .batches_wire import MessageBatches
    from .fake_model import (
        FakeFailure,
        FakeModel,
        FakeModelExhaustedError,
        FakeToolCall,
        FakeTurn,
        Responder,
    )
    from .kit import FlueTestKit, RunResult
    from .replay_check import ReplayMismatchError
    from .sink import RecordingSink
    from .store_contract import EventStoreContract

__all__ = [
    "AnthropicApi",
    "AnthropicApiExhaustedError",
    "EventStoreContract",
    "FakeFailure",
    "FakeModel",
    "FakeModelExhaustedError",
    "FakeToolCall",
    "FakeTurn",
    "FlueTestKit",
    "MessageBatches",
    "RecordingSink",
    "ReplayMismatchError",
    "Responder",
    "RunResult",
]

__getattr__ = lazy_exports(
    __name__,
    {
        ".anthropic_api": ("AnthropicApi", "AnthropicApiExhaustedError"),
        ".batches_wire": ("MessageBatches",),
        ".fake_model": (
            "FakeFailure",
            "FakeModel",
            "FakeModelExhaustedError",
            "FakeToolCall",
            "FakeTurn",
            "Responder",
        ),
        ".kit": ("FlueTestKit", "RunResult"),
        ".replay_check": ("ReplayMismatchError",),
        ".sink": ("RecordingSink",),
        ".store_contract": ("EventStoreContract",),
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
