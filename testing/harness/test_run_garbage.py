"""A finished run is freed by reference counting, not left to the cycle collector: the
harness, its sessions and workspace tools, and the RunActor form no reference cycle once the
run has ended (the collector's passes over such cycles were about 40% of a fake-model run's
CPU). Checked by what the collector finds, never by timing."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flue_actors import Runtime
from flue_actors._harness import Harness
from flue_actors._harness.session import Session
from flue_actors._runtime.run_actor import RunActor
from flue_actors.models import ModelRegistry
from flue_actors.testing import FakeModel

from .support import make_harness

_PER_RUN = (Harness, Session, RunActor)
_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture
def cyclic_garbage() -> Iterator[Callable[[], list[str]]]:
    """A function naming the per-run classes among what the collector finds unreachable but
    cyclic since the test began (with ``DEBUG_SAVEALL`` it keeps them in ``gc.garbage``)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # no collection mid-test: everything cyclic is still there when asked
    gc.set_debug(gc.DEBUG_SAVEALL)

    def per_run() -> list[str]:
        gc.collect()
        return sorted({type(o).__name__ for o in gc.garbage if isinstance(o, _PER_RUN)})

    try:
        yield per_run
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


async def test_a_closed_harness_leaves_no_cycle(
    cyclic_garbage: Callable[[], list[str]],
) -> None:
    fake = FakeModel()
    fake.reply("hi")
    harness, _sink = make_harness(fake)
    session = await harness.session()
    assert (await session.prompt("hello")).text == "hi"
    await harness.close()
    del harness, session
    assert cyclic_garbage() == []


async def test_a_finished_run_leaves_no_cycle(
    cyclic_garbage: Callable[[], list[str]],
) -> None:
    async with Runtime(_WORKFLOWS, models=ModelRegistry(override="fake/echo"), env={}) as runtime:
        record = await runtime.run("summarize", {"text": "a document"})
        assert record.status == "completed"
    assert cyclic_garbage() == []
