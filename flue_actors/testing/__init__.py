"""The pytest kit: test workflows deterministically, with a scripted model.

The fixtures ``flue``, ``fake_model`` and ``anthropic_api`` are registered automatically when
flue_actors is installed. Outside pytest, build a :class:`FlueTestKit` yourself. An event store
proves itself against :class:`EventStoreContract` (see :mod:`flue_actors.testing.store_contract`).

The names below load on first access: pytest loads this package's plugin in every run of an
environment where flue_actors is installed, and that must not cost a runtime, respx or httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy

if TYPE_CHECKING:
    from ._anthropic_api import AnthropicApi, AnthropicApiExhaustedError
    from ._batches_wire import MessageBatches
    from ._fake_model import (
        FakeFailure,
        FakeModel,
        FakeModelExhaustedError,
        FakeToolCall,
        FakeTurn,
        Responder,
    )
    from ._kit import FlueTestKit, RunResult
    from ._replay_check import ReplayMismatchError
    from ._sink import RecordingSink
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

_lazy.publish(__name__)

__getattr__ = _lazy.lazy_exports(
    __name__,
    {
        "._anthropic_api": ("AnthropicApi", "AnthropicApiExhaustedError"),
        "._batches_wire": ("MessageBatches",),
        "._fake_model": (
            "FakeFailure",
            "FakeModel",
            "FakeModelExhaustedError",
            "FakeToolCall",
            "FakeTurn",
            "Responder",
        ),
        "._kit": ("FlueTestKit", "RunResult"),
        "._replay_check": ("ReplayMismatchError",),
        "._sink": ("RecordingSink",),
        ".store_contract": ("EventStoreContract",),
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
