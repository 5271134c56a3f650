"""Retries of transient model errors (reference 1.5), driven deterministically by FakeModel's
scripted failures: backoff, retry-after, the warn log per retry, the turn per attempt, the
retry ceiling, permanent errors, and aborts during backoff."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flue_actors import (
    AbortError,
    ActionContext,
    AgentConfig,
    Harness,
    ModelRegistry,
    OperationFailedError,
    Usage,
    define_agent,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors.models import MAX_TRANSIENT_MODEL_RETRIES, RetryPolicy
from flue_actors.testing import FakeModel, FlueTestKit, RecordingSink

RETRY_MESSAGE = "[flue:model-retry] Retrying transient model error"


def make(
    fake: FakeModel, sleep: Any = None, jitter: float = 0.0
) -> tuple[Harness, RecordingSink, list[float]]:
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    sink = RecordingSink()
    retry = RetryPolicy(sleep=sleep or record, jitter=lambda: jitter)
    harness = Harness(
        config=AgentConfig(model="fake/echo"),
        models=ModelRegistry(override=fake, retry=retry),
        sink=sink,
        clock=StepClock(),
        ids=SequentialIds(),
    )
    return harness, sink, sleeps


async def test_429_is_retried_after_its_retry_after() -> None:
    fake = FakeModel().fail(status=429, retry_after=4).reply("ok")
    harness, sink, sleeps = make(fake)
    response = await (await harness.session()).prompt("go")
    assert response.text == "ok"
    assert sleeps == [4.0]
    [log] = sink.of("log")
    assert log["level"] == "warn"
    assert log["message"] == RETRY_MESSAGE
    assert log["attributes"]["attempt"] == 1
    assert log["attributes"]["delayMs"] == 4000
    assert log["attributes"]["error"]["type"] == "model_request_failed"
    assert log["attributes"]["error"]["code"] == "rate_limited"
    assert log["operationId"] == sink.of("operation_start")[0]["operationId"]


async def test_short_retry_after_does_not_shorten_the_backoff() -> None:
    fake = FakeModel().fail(status=429, retry_after=0.1).reply("ok")
    harness, _, sleeps = make(fake)
    await (await harness.session()).prompt("go")
    assert sleeps == [1.5]


@pytest.mark.parametrize(
    ("jitter", "delays"), [(0.0, [1500, 3000, 6000]), (1.0, [2000, 4000, 8000])]
)
async def test_backoff_doubles_with_jitter(jitter: float, delays: list[int]) -> None:
    fake = FakeModel().fail(status=529).fail(status=500).fail(kind="stream_cut").reply("ok")
    harness, sink, sleeps = make(fake, jitter=jitter)
    assert (await (await harness.session()).prompt("go")).text == "ok"
    assert [log["attributes"]["delayMs"] for log in sink.of("log")] == delays
    assert sleeps == [delay / 1000 for delay in delays]


async def test_each_attempt_is_a_turn_and_usage_counts_the_successful_turns() -> None:
    fake = FakeModel().fail(status=529).reply("ok", usage=Usage(input=7, output=3))
    harness, sink, _ = make(fake)
    response = await (await harness.session()).prompt("go")
    turns = sink.of("turn")
    assert [turn["isError"] for turn in turns] == [True, False]
    assert turns[0]["response"]["error"]["code"] == "overloaded"
    assert len(sink.of("turn_start")) == 2
    assert len({turn["turnId"] for turn in turns}) == 2
    # The user message is shown once, in the first attempt's turn.
    users = [e for e in sink.of("message_start") if e["message"]["role"] == "user"]
    assert len(users) == 1
    assert response.usage == Usage(input=7, output=3)
    assert len(fake.requests) == 2


async def test_stream_cut_after_chunks_streams_then_retries() -> None:
    fake = FakeModel().fail(kind="stream_cut", after_chunks=3).reply("whole", chunks=["who", "le"])
    harness, sink, _ = make(fake)
    assert (await (await harness.session()).prompt("go")).text == "whole"
    assert [e["text"] for e in sink.of("text_delta")] == [
        "chunk1 ",
        "chunk2 ",
        "chunk3 ",
        "who",
        "le",
    ]
    assert sink.of("log")[0]["attributes"]["error"]["code"] == "stream_cut"


async def test_retries_stop_after_the_ceiling() -> None:
    fake = FakeModel()
    for _ in range(MAX_TRANSIENT_MODEL_RETRIES + 1):
        fake.fail(status=529)
    fake.reply("never reached")
    harness, sink, sleeps = make(fake)
    with pytest.raises(OperationFailedError, match="prompt failed: Fake API error 529"):
        await (await harness.session()).prompt("go")
    assert len(fake.requests) == MAX_TRANSIENT_MODEL_RETRIES + 1
    assert len(sleeps) == MAX_TRANSIENT_MODEL_RETRIES
    assert fake.pending == 1
    assert [turn["isError"] for turn in sink.of("turn")] == [True] * 4
    assert sink.of("operation")[0]["isError"] is True


@pytest.mark.parametrize(
    "failure", [{"kind": "context_overflow"}, {"status": 400}, {"status": 401}]
)
async def test_permanent_errors_are_not_retried(failure: dict[str, Any]) -> None:
    fake = FakeModel().fail(**failure).reply("never reached")
    harness, sink, sleeps = make(fake)
    with pytest.raises(OperationFailedError):
        await (await harness.session()).prompt("go")
    assert len(fake.requests) == 1
    assert sleeps == []
    assert [log for log in sink.of("log") if log["message"] == RETRY_MESSAGE] == []


async def test_context_overflow_message_says_prompt_too_long() -> None:
    fake = FakeModel().fail(kind="context_overflow")
    harness, sink, _ = make(fake)
    with pytest.raises(OperationFailedError, match="prompt is too long"):
        await (await harness.session()).prompt("go")
    assert sink.of("turn")[0]["response"]["error"]["code"] == "context_overflow"


async def test_abort_during_backoff_makes_no_further_model_call() -> None:
    fake = FakeModel().fail(status=529).reply("never reached")
    sleeping = asyncio.Event()

    async def slow(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(3600)

    harness, sink, _ = make(fake, sleep=slow)
    handle = (await harness.session()).prompt("go")
    await asyncio.wait_for(sleeping.wait(), 5)
    handle.abort("enough")
    with pytest.raises(AbortError):
        await handle
    assert len(fake.requests) == 1
    assert fake.pending == 1
    operation = sink.of("operation")[0]
    assert operation["isError"] is True
    assert operation["error"]["name"] == "AbortError"


# --- through a run -------------------------------------------------------------------------------


async def _prompt(ctx: ActionContext[None]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt("hello")).text


retrying = define_workflow(agent=define_agent(lambda c: {"model": "fake/echo"}), run=_prompt)


def test_the_kit_records_backoff_without_waiting(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.fail(status=429, retry_after=2.5).fail(status=529).reply("hi there")
    run = flue.run(retrying)
    assert run.status == "completed"
    assert run.result == "hi there"
    assert flue.sleeps == [2.5, 3.0]
    logs = run.events_of("log")
    assert [log["attributes"]["delayMs"] for log in logs] == [2500, 3000]
    assert [turn["isError"] for turn in run.events_of("turn")] == [True, True, False]


def test_a_permanent_error_fails_the_run(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.fail(kind="context_overflow")
    run = flue.run(retrying)
    assert run.status == "errored"
    assert run.error is not None
    assert "prompt is too long" in run.error["message"]
    assert flue.sleeps == []
