"""A serving runtime takes over the runs of a dead owner and resumes them by replay, on SQLite and
PostgreSQL: no model call the log answers is made again, ``recovery="fail"`` keeps ending them
``run_interrupted``, and code that no longer makes the logged operations ends
``replay_divergence``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import ActionContext, Runtime, define_agent, define_workflow
from flue_actors._clock import SystemClock
from flue_actors._definitions import WorkflowDefinition
from flue_actors._runtime.run_actor import read_run_events
from flue_actors.models import ModelRegistry
from flue_actors.store import SqliteEventStore, run_stream
from flue_actors.testing import FakeModel

SWEEP_SECONDS = 0.2
agent = define_agent(model="fake/echo")


class Words(BaseModel):
    words: list[str]


async def three_calls(ctx: ActionContext[Words]) -> list[str]:
    session = await ctx.harness.session()
    return [(await session.prompt(word)).text for word in ctx.input.words]


async def changed(ctx: ActionContext[Words]) -> list[str]:
    session = await ctx.harness.session()
    await session.shell("echo first")  # the session's log holds a prompt here
    return [(await session.prompt(word)).text for word in ctx.input.words]


def workflow(run: Any, recovery: Any = "resume") -> WorkflowDefinition[Any]:
    return define_workflow(agent=agent, input=Words, run=run, recovery=recovery)


def echo_model() -> FakeModel:
    return FakeModel().respond_with(
        lambda request: "echo " + request.messages[-1]["content"][0]["text"]
    )


async def _log_of_a_finished_run(
    cut_after_turns: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run of ``three_calls`` to its end, and its log cut after its Nth ``turn`` event, as a
    crash of its owner would leave it."""
    model = echo_model()
    async with Runtime(
        {"calls": workflow(three_calls)},
        store=SqliteEventStore(":memory:"),
        models=ModelRegistry(override=model),
    ) as runtime:
        record = await runtime.run("calls", {"words": ["a", "b", "c"]})
        assert record.status == "completed"
        header = await runtime.store.read_header(record.run_id)
        events, _ = await read_run_events(runtime.store, record.run_id)
    assert header is not None
    turns = [i for i, event in enumerate(events) if event["type"] == "turn"]
    cut = turns[cut_after_turns - 1] + 1 if cut_after_turns else 3
    return dict(header), events[:cut]


@pytest.fixture
def model() -> FakeModel:
    return echo_model()


@pytest.fixture
async def crashed_run(
    database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, str]]:
    """The database URL, and the id of a run in it whose owner died after its first turn."""
    header, prefix = await _log_of_a_finished_run(1)
    store = Runtime({}, store=database_url).store
    try:
        owner = "local:crashed:1:aaaa"
        await store.heartbeat(owner, SystemClock().now_ms() - 60_000)
        assert await store.admit_run(header, owner=owner)  # type: ignore[arg-type]
        await store.append(run_stream(header["runId"]), prefix, expected_seq=0)
        yield database_url, header["runId"]
    finally:
        await store.close()


async def _serve_once(
    database_url: str, definition: WorkflowDefinition[Any], model: FakeModel, run_id: str
) -> tuple[Any, list[dict[str, Any]]]:
    async with Runtime(
        {"calls": definition},
        store=database_url,
        models=ModelRegistry(override=model),
        lease_seconds=3,
        sweep_seconds=SWEEP_SECONDS,
    ) as runtime:
        await runtime.serve()
        record = await runtime.wait(run_id, timeout=10)
        events, _ = await read_run_events(runtime.store, run_id)
        return record, events


async def test_an_orphan_is_resumed_without_repeating_its_model_calls(
    crashed_run: tuple[str, str], model: FakeModel
) -> None:
    database_url, run_id = crashed_run
    record, events = await _serve_once(database_url, workflow(three_calls), model, run_id)

    assert record.status == "completed", record
    assert record.result == ["echo a", "echo b", "echo c"]
    assert len(model.requests) == 2  # the first turn came from the log
    assert [e["eventIndex"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types.count("run_start") == 1
    assert types.count("run_resume") == 1
    assert types.count("turn") == 3
    assert types[-1] == "run_end"


async def test_recovery_fail_ends_an_orphan_interrupted(
    crashed_run: tuple[str, str], model: FakeModel
) -> None:
    database_url, run_id = crashed_run
    record, events = await _serve_once(
        database_url, workflow(three_calls, recovery="fail"), model, run_id
    )
    assert record.status == "errored"
    assert record.error["type"] == "run_interrupted"
    assert model.requests == []
    assert [e["type"] for e in events][-2:] == ["run_resume", "run_end"]


async def test_changed_code_ends_the_resumed_run_with_a_divergence(
    crashed_run: tuple[str, str], model: FakeModel
) -> None:
    database_url, run_id = crashed_run
    record, events = await _serve_once(database_url, workflow(changed), model, run_id)

    assert record.status == "errored"
    error = record.error
    assert error["type"] == "replay_divergence"
    assert error["meta"]["position"] == 1  # right after run_start
    assert error["meta"]["recorded"].startswith("operation_start prompt")
    assert error["meta"]["requested"].startswith("operation_start shell")
    assert "event 1" in error["message"], error
    assert model.requests == []
    assert [e["eventIndex"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events][-2:] == ["run_resume", "run_end"]


@pytest.mark.parametrize("resume", [True, False])
async def test_recover_by_hand_resumes_or_ends_an_orphan(
    crashed_run: tuple[str, str], model: FakeModel, resume: bool
) -> None:
    """``Runtime.recover``, what ``flue-actors runs recover`` calls: with ``resume`` the orphan
    is resumed here by replay (awaited with ``wait``), without it ended ``run_interrupted``."""
    database_url, run_id = crashed_run
    async with Runtime(
        {"calls": workflow(three_calls)}, store=database_url, models=ModelRegistry(override=model)
    ) as runtime:
        assert await runtime.recover(lease_seconds=3, resume=resume) == [run_id]
        record = await runtime.wait(run_id, timeout=10)
        assert await runtime.recover(lease_seconds=3, resume=resume) == []
    if resume:
        assert (record.status, record.result) == ("completed", ["echo a", "echo b", "echo c"])
        assert len(model.requests) == 2  # the first turn came from the log
    else:
        assert record.status == "errored"
        assert record.error is not None
        assert record.error["type"] == "run_interrupted"
        assert model.requests == []
