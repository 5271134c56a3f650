"""A harness wired to a FakeModel and a recording sink, for session-level tests."""

from __future__ import annotations

from typing import Any

from flue_actors import AgentConfig, Harness, ModelRegistry
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors.models import RetryPolicy
from flue_actors.testing import FakeModel, RecordingSink


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
