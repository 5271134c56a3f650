"""A shutdown (SIGTERM of ``serve``: ``Runtime.close`` with a grace period) stops the runs it
hosts: those of workflows that resume are left active, everything they did written, and the
next sweep resumes them by replay to their end; ``recovery="fail"`` ends them interrupted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import ActionContext, Runtime, SqliteEventStore, define_agent, define_workflow
from flue_actors._clock import SystemClock
from flue_actors._runtime import LocalBackend, RunServices
from flue_actors._runtime.recovery import end_orphaned_runs
from flue_actors._runtime.run_actor import read_run_events
from flue_actors.models import ModelRegistry, ModelRequest
from flue_actors.testing import FakeModel

agent = define_agent(model="fake/scripted", instructions="Answer.")


class Words(BaseModel):
    words: list[str]


async def prompts(ctx: ActionContext[Words]) -> list[str]:
    session = await ctx.harness.session()
    return [(await session.prompt(word)).text for word in ctx.input.words]


class HeldModel:
    """Answers ``echo <word>``, except that the word ``hold`` is not answered until
    ``release`` (a model call in flight when the shutdown comes)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.asked: list[str] = []
        self.fake = FakeModel().respond_with(self.respond)

    async def respond(self, request: ModelRequest) -> str:
        word = request.messages[-1]["content"][0]["text"]
        self.asked.append(word)
        if word == "hold":
            self.holding.set()
            await self.release.wait()
        return f"echo {word}"


def _runtime(path: Path, model: HeldModel, recovery: Any) -> Runtime:
    workflow = define_workflow(agent=agent, input=Words, run=prompts, recovery=recovery)
    return Runtime(
        {"prompts": workflow},
        store=SqliteEventStore(str(path)),
        models=ModelRegistry(override=model.fake),
    )


async def _stopped_mid_run(path: Path, recovery: Any) -> tuple[str, HeldModel]:
    model = HeldModel()
    runtime = _runtime(path, model, recovery)
    receipt = await runtime.invoke("prompts", {"words": ["a", "hold", "c"]})
    await model.holding.wait()  # the second call is in flight
    await runtime.close(grace_seconds=0)
    return receipt.run_id, model


@pytest.mark.parametrize("recovery", ["resume", "fail"])
async def test_a_shutdown_leaves_resumable_runs_to_be_resumed(
    tmp_path: Path, recovery: str
) -> None:
    path = tmp_path / "flue.db"
    run_id, _ = await _stopped_mid_run(path, recovery)

    store = SqliteEventStore(str(path))
    record = await store.get_run(run_id)
    events, _ = await read_run_events(store, run_id)
    await store.close()
    assert record is not None
    kinds = [event["type"] for event in events]
    if recovery == "fail":
        assert record.status == "errored"
        assert kinds[-2:] == ["run_resume", "run_end"]
        assert events[-1]["error"]["type"] == "run_interrupted"
        return
    assert record.status == "active"
    assert "run_end" not in kinds
    assert kinds.count("turn") == 1  # the first answer is written, ready to be replayed

    # The next process to sweep the store (here at once: the lease is taken as expired).
    model = HeldModel()
    model.release.set()
    runtime = _runtime(path, model, recovery)
    try:
        stale = SystemClock().now_ms() + 1
        resume = runtime.backend.resume  # type: ignore[attr-defined]
        ended = await end_orphaned_runs(
            runtime.store, runtime.clock, stale_before_ms=stale, resume=resume
        )
        assert ended == []  # resumed, not ended
        final = await runtime.wait(run_id, timeout=30)
        assert final.status == "completed", final.error
        assert final.result == ["echo a", "echo hold", "echo c"]
        assert model.asked == ["hold", "c"]  # the answered call is not asked again
        events, _ = await read_run_events(runtime.store, run_id)
        assert [e["eventIndex"] for e in events] == list(range(len(events)))
        assert [e["type"] for e in events].count("run_resume") == 1
    finally:
        await runtime.close()


async def test_two_resume_calls_at_once_run_the_body_once(tmp_path: Path) -> None:
    """A restarted Ray host resumes its runs as it opens while a sweep may ask it for the same
    run: two ``resume`` calls in one process, at once, under the same owner. The run resumes
    once: its remaining calls are asked once, and its log has one ``run_resume``."""
    path = tmp_path / "flue.db"
    run_id, _ = await _stopped_mid_run(path, "resume")
    store = SqliteEventStore(str(path))
    owner = await store.owner_of(run_id)
    await store.close()
    assert owner is not None
    model = HeldModel()
    model.release.set()
    workflow = define_workflow(agent=agent, input=Words, run=prompts, recovery="resume")

    def restarted(services: RunServices, **_: object) -> LocalBackend:
        return LocalBackend(services, owner=owner)  # a restarted host keeps its name

    runtime = Runtime(
        {"prompts": workflow},
        store=SqliteEventStore(str(path)),
        models=ModelRegistry(override=model.fake),
        backend=restarted,
    )
    try:
        backend = runtime.backend
        assert isinstance(backend, LocalBackend)
        taken = await asyncio.gather(backend.resume(run_id), backend.resume(run_id))
        assert list(taken) == [True, True]
        final = await runtime.wait(run_id, timeout=30)
        assert final.status == "completed", final.error
        assert model.asked == ["hold", "c"]
        events, _ = await read_run_events(runtime.store, run_id)
        assert [e["type"] for e in events].count("run_resume") == 1
    finally:
        await runtime.close()
