"""A harness wired to a FakeModel and a recording sink, for session-level tests."""

from __future__ import annotations

from typing import Any

from flue_actors import AgentConfig, Harness, ModelRegistry
from flue_actors.clock import StepClock
from flue_actors.ids import SequentialIds
from flue_actors.models import RetryPolicy
from flue_actors.testing import FakeModel


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = {"type": type, **payload}
        self.events.append(event)
        return event

    def of(self, type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == type]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def make_harness(fake: FakeModel, **config: Any) -> tuple[Harness, RecordingSink]:
    async def no_wait(_seconds: float) -> None:
        return None

    sink = RecordingSink()
    harness = Harness(
        config=AgentConfig(**{"model": "fake/echo", **config}),
        models=ModelRegistry(override=fake, retry=RetryPolicy(sleep=no_wait)),
        sink=sink,
        clock=StepClock(),
        ids=SequentialIds(),
    )
    return harness, sink
