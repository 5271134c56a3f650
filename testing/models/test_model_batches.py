"""Model turns through the Message Batches API: the collector (windows by count, size and time,
routing by custom_id, polling with backoff), the batched provider (retries of expired and
failed requests, the Messages API fallback, batch prices) and whole runs through ``Runtime``
against ``anthropic_api``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    ModelBatches,
    ModelRegistry,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_tool,
    define_workflow,
)
from flue_actors._harness.replay import batch_record
from flue_actors.errors import ModelRequestError
from flue_actors.models import (
    MessageBatchCollector,
    MessageBatchesProvider,
    ModelRequest,
    RetryPolicy,
    TextDelta,
    Usage,
)
from flue_actors.models._anthropic_catalog import cost_of
from flue_actors.models._message_batches import turn_custom_id
from flue_actors.store import run_stream
from flue_actors.testing import AnthropicApi
from flue_actors.testing._messages_wire import MessagesScript, summary_reply

MODEL = "claude-haiku-4-5"


class Sleeps:
    """Polls and windows without waiting: each sleep is recorded and yields once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(0)


class Window:
    """A time window the test closes: sleeps of ``length`` seconds wait for ``close()``;
    every other sleep (the polls) returns at once."""

    def __init__(self, length: float) -> None:
        self.length = length
        self._closed = asyncio.Event()
        self.polls: list[float] = []

    def close(self) -> None:
        self._closed.set()

    async def __call__(self, seconds: float) -> None:
        if seconds == self.length:
            await self._closed.wait()
            self._closed.clear()
        else:
            self.polls.append(seconds)
            await asyncio.sleep(0)


def _request(text: str) -> ModelRequest:
    return ModelRequest(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        thinking_level="off",
    )


async def _until(condition: Any) -> None:
    """Yield to the loop until ``condition()`` holds (no timed sleep: the work is in-loop)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@pytest.fixture
async def provider(anthropic_api: AnthropicApi) -> AsyncIterator[MessageBatchesProvider]:
    # Turns submitted together fill a batch of 3; a lone turn goes when the window closes (at
    # once: the sleep does not wait).
    settings = ModelBatches(max_requests=3, window=1.0, sleep=Sleeps())
    batched = MessageBatchesProvider(anthropic_api.provider, settings)
    yield batched
    await batched.aclose()


# --- the collector ------------------------------------------------------------------------------


async def test_a_full_batch_goes_out_at_once_and_results_find_their_turns(
    anthropic_api: AnthropicApi, provider: MessageBatchesProvider
) -> None:
    for text in ("one", "two", "three"):
        anthropic_api.reply(f"answer {text}")
    streamed: list[str] = []
    responses = await asyncio.gather(
        *(
            provider.complete(_request(text), lambda e: streamed.append(getattr(e, "text", "")))
            for text in ("one", "two", "three")
        )
    )
    assert anthropic_api.batches.created == 1
    assert anthropic_api.requests == []
    batched = anthropic_api.batches.requests
    assert [len({r["custom_id"] for r in batched})] == [3]
    # Results come back in reverse order; each turn still gets the answer its request got.
    by_custom_id = {
        r["custom_id"]: r["params"]["messages"][0]["content"][0]["text"] for r in batched
    }
    answers = {text: f"answer {text}" for text in ("one", "two", "three")}
    for response in responses:
        assert response.custom_id is not None
        assert response.batch_id is not None
        assert response.text == answers[by_custom_id[response.custom_id]]
        assert response.batch_id == anthropic_api.batches.views()[0]["id"]
    assert sorted(streamed) == sorted(answers.values())


async def test_the_count_window_splits_turns_into_batches(anthropic_api: AnthropicApi) -> None:
    window = Window(30.0)
    settings = ModelBatches(max_requests=2, window=30.0, sleep=window)
    collector = MessageBatchCollector(anthropic_api.provider.sdk_client, settings)
    for number in range(5):
        anthropic_api.reply(f"a{number}")
    params = [
        {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": str(n)}]}
        for n in range(5)
    ]
    turns = [asyncio.ensure_future(collector.submit(body)) for body in params]
    await anthropic_api.wait_for_batches(2)
    assert [view["request_counts"]["succeeded"] for view in anthropic_api.batches.views()] == [2, 2]
    assert not turns[4].done()  # the fifth waits for the time window
    window.close()
    results = await asyncio.gather(*turns)
    assert anthropic_api.batches.created == 3
    assert collector.batches == 3
    assert collector.submitted == 5
    assert len({result.custom_id for result in results}) == 5
    assert {result.type for result in results} == {"succeeded"}
    await collector.aclose()


async def test_the_time_window_gathers_what_arrived_meanwhile(anthropic_api: AnthropicApi) -> None:
    window = Window(2.0)
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client, ModelBatches(window=2.0, sleep=window)
    )
    for number in range(4):
        anthropic_api.reply(f"a{number}")
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    turns = [asyncio.ensure_future(collector.submit(dict(body))) for _ in range(4)]
    await _until(lambda: len(collector._pending) == 4)
    assert anthropic_api.batches.created == 0
    window.close()
    await asyncio.gather(*turns)
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == 4
    await collector.aclose()


async def test_the_size_window_keeps_each_batch_under_max_bytes(
    anthropic_api: AnthropicApi,
) -> None:
    # A window that closes at once sends the remainder a size limit left behind.
    settings = ModelBatches(max_bytes=600, window=1.0, sleep=Sleeps())
    collector = MessageBatchCollector(anthropic_api.provider.sdk_client, settings)
    for number in range(3):
        anthropic_api.reply(f"a{number}")
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "y" * 150}]}
    results = await asyncio.gather(*(collector.submit(dict(body)) for _ in range(3)))
    assert anthropic_api.batches.created >= 2
    assert {result.type for result in results} == {"succeeded"}
    with pytest.raises(ModelRequestError) as refused:
        await collector.submit({**body, "messages": [{"role": "user", "content": "z" * 700}]})
    assert refused.value.code == "batch_request_too_large"
    await collector.aclose()


async def test_polls_back_off_until_the_batch_ends(anthropic_api: AnthropicApi) -> None:
    anthropic_api.batches.processing_seconds = 100.0
    polls: list[float] = []

    async def polls_advance_time(seconds: float) -> None:
        polls.append(seconds)
        anthropic_api.batches.advance(seconds)
        await asyncio.sleep(0)

    settings = ModelBatches(
        max_requests=1, poll_interval=10.0, max_poll_interval=40.0, sleep=polls_advance_time
    )
    collector = MessageBatchCollector(anthropic_api.provider.sdk_client, settings)
    anthropic_api.reply("late")
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    result = await collector.submit(body)
    assert result.type == "succeeded"
    # A full batch goes out without waiting; polls after 10, 20, 40, 40 s: ended at 110 s.
    assert polls == [10.0, 20.0, 40.0, 40.0]
    await collector.aclose()


async def test_a_turn_aborted_before_submission_leaves_the_batch(
    anthropic_api: AnthropicApi,
) -> None:
    window = Window(5.0)
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client, ModelBatches(window=5.0, sleep=window)
    )
    anthropic_api.reply("kept")
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    kept = asyncio.ensure_future(collector.submit(dict(body)))
    aborted = asyncio.ensure_future(collector.submit(dict(body)))
    await _until(lambda: len(collector._pending) == 2)
    aborted.cancel()
    await asyncio.gather(aborted, return_exceptions=True)
    window.close()
    assert (await kept).type == "succeeded"
    assert len(anthropic_api.batches.requests) == 1
    await collector.aclose()


async def test_a_failed_submission_fails_the_waiting_turns_transiently(
    anthropic_api: AnthropicApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client,
        ModelBatches(max_requests=1, window=math.inf, sleep=Sleeps()),
    )
    monkeypatch.setattr(anthropic_api.batches, "handle", _overloaded)
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(ModelRequestError) as failed:
        await collector.submit(body)
    assert failed.value.transient
    assert failed.value.code == "overloaded"
    await collector.aclose()


def _overloaded(*_args: Any) -> Any:
    from flue_actors.testing._messages_wire import error_answer

    return error_answer(529, "overloaded_error", "Overloaded")


# --- the provider -------------------------------------------------------------------------------


async def test_batched_turns_cost_half_and_say_where_they_came_from(
    anthropic_api: AnthropicApi, provider: MessageBatchesProvider
) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 200}
    anthropic_api.reply("cheap", usage=usage, thinking="hmm")
    response = await provider.complete(_request("x"), lambda _e: None)
    full = cost_of(MODEL, Usage(input=1000, output=200))
    assert response.usage.cost.total == pytest.approx(full.cost.total / 2)
    assert response.usage.cost.input == pytest.approx(1000 * 1.0e-6 / 2)
    assert response.usage.input == 1000
    assert response.usage.output == 200
    assert [block["type"] for block in response.content] == ["thinking", "text"]
    assert response.content[0]["thinkingSignature"] == "sig-0"


async def test_expired_and_overloaded_requests_go_in_the_next_batch(
    anthropic_api: AnthropicApi, provider: MessageBatchesProvider
) -> None:
    anthropic_api.stall()  # never finishes: expires
    anthropic_api.fail(status=529)  # overloaded inside the batch
    anthropic_api.reply("third time")
    anthropic_api.batches.processing_seconds = 0.0
    turn = asyncio.ensure_future(provider.complete(_request("x"), lambda _e: None))
    await anthropic_api.wait_for_batches(1)
    anthropic_api.batches.expire()
    response = await turn
    assert response.text == "third time"
    assert anthropic_api.batches.created == 3
    custom_ids = [request["custom_id"] for request in anthropic_api.batches.requests]
    assert len(set(custom_ids)) == 3
    assert response.custom_id == custom_ids[-1]


async def test_retries_give_up_with_a_permanent_error(anthropic_api: AnthropicApi) -> None:
    settings = ModelBatches(max_requests=1, window=math.inf, retries=1, sleep=Sleeps())
    batched = MessageBatchesProvider(anthropic_api.provider, settings)
    anthropic_api.fail(status=500)
    anthropic_api.fail(status=500)
    with pytest.raises(ModelRequestError, match="sent 2 times") as failed:
        await batched.complete(_request("x"), lambda _e: None)
    assert not failed.value.transient
    assert failed.value.code == "server_error"
    await batched.aclose()


async def test_a_bad_request_fails_at_once(
    anthropic_api: AnthropicApi, provider: MessageBatchesProvider
) -> None:
    anthropic_api.fail(status=400, message="prompt is too long: 300000 tokens")
    with pytest.raises(ModelRequestError) as failed:
        await provider.complete(_request("x"), lambda _e: None)
    assert failed.value.code == "context_overflow"
    assert not failed.value.transient
    assert anthropic_api.batches.created == 1


async def test_the_messages_fallback_answers_a_failed_batched_turn(
    anthropic_api: AnthropicApi,
) -> None:
    settings = ModelBatches(max_requests=1, window=math.inf, fallback="messages", sleep=Sleeps())
    batched = MessageBatchesProvider(anthropic_api.provider, settings)
    anthropic_api.fail(status=529)
    anthropic_api.reply("streamed at full price", usage={"input_tokens": 100, "output_tokens": 10})
    deltas: list[Any] = []
    response = await batched.complete(_request("x"), deltas.append)
    assert response.text == "streamed at full price"
    assert response.batch_id is None
    assert response.usage.cost == cost_of(MODEL, Usage(input=100, output=10)).cost
    assert len(anthropic_api.requests) == 1
    assert anthropic_api.requests[0]["stream"] is True
    assert any(isinstance(delta, TextDelta) for delta in deltas)
    await batched.aclose()


async def test_a_fallback_is_logged_once_per_cause(
    anthropic_api: AnthropicApi, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ModelBatches(max_requests=1, window=math.inf, fallback="messages", sleep=Sleeps())
    batched = MessageBatchesProvider(anthropic_api.provider, settings)
    for _ in range(2):  # overloaded in its batch, then answered at full price
        anthropic_api.fail(status=529)
        anthropic_api.reply("answered")
    anthropic_api.fail(status=500)  # a server error in its batch
    anthropic_api.reply("answered")
    caplog.set_level("WARNING", logger="flue_actors.model_batches")
    for text in ("a", "b", "c"):
        assert (await batched.complete(_request(text), lambda _e: None)).text == "answered"
    await batched.aclose()
    warnings = [r for r in caplog.records if r.name == "flue_actors.model_batches"]
    assert [record.levelname for record in warnings] == ["WARNING", "WARNING"]
    assert "(overloaded:" in warnings[0].getMessage()
    assert "(server_error:" in warnings[1].getMessage()
    assert all("Messages API at full price" in record.getMessage() for record in warnings)
    assert len(anthropic_api.requests) == 3


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_requests"):
        ModelBatches(max_requests=100_001)
    with pytest.raises(ValueError, match="max_bytes"):
        ModelBatches(max_bytes=0)
    with pytest.raises(ValueError, match="max_poll_interval"):
        ModelBatches(poll_interval=10, max_poll_interval=5)
    with pytest.raises(ValueError, match="fallback"):
        ModelBatches(fallback="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Anthropic provider"):
        ModelRegistry(
            {"anthropic": ModelRegistry().resolve("fake/echo").provider},
            model_batches=ModelBatches(),
        )


# --- whole runs ---------------------------------------------------------------------------------


class AddInput(BaseModel):
    a: int
    b: int


async def _add(args: AddInput) -> int:
    return args.a + args.b


ADD = define_tool(name="add", description="Add two integers.", input=AddInput, run=_add)


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str


adder = define_agent(model="anthropic/claude-haiku-4-5", tools=[ADD], thinking_level="off")


@define_workflow(agent=adder)
async def add_twice(ctx: ActionContext[Question]) -> Answer:
    session = await ctx.harness.session()
    response = await session.prompt(ctx.input.text)
    return Answer(answer=response.text)


def _runtime(tmp_path: Path, settings: ModelBatches) -> Runtime:
    return Runtime(
        {"add_twice": add_twice},
        store=SqliteEventStore(str(tmp_path / "runs.db")),
        models=ModelRegistry(retry=RetryPolicy(sleep=Sleeps(), jitter=lambda: 0.0)),
        model_batches=settings,
    )


async def _events(runtime: Runtime, run_id: str) -> list[dict[str, Any]]:
    page = await runtime.store.read(run_stream(run_id), offset="-1", limit=1000)
    return [event.data for event in page.events]


async def test_a_three_turn_agent_with_tools_takes_three_batch_rounds(
    anthropic_api: AnthropicApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUE_MODEL", raising=False)
    usage = {"input_tokens": 400, "output_tokens": 40}
    anthropic_api.reply("", tool_calls=[("add", {"a": 1, "b": 2})], usage=usage)
    anthropic_api.reply("", tool_calls=[("add", {"a": 3, "b": 4})], usage=usage)
    anthropic_api.reply("3 and 7", usage=usage)
    settings = ModelBatches(max_requests=1, window=math.inf, sleep=Sleeps())
    async with _runtime(tmp_path, settings) as runtime:
        receipt = await runtime.invoke("add_twice", {"text": "add 1+2, then 3+4"})
        record = await runtime.wait(receipt.run_id)
        events = await _events(runtime, receipt.run_id)
        progress = await runtime.model_batch_progress()
    assert progress == {"pending": 0, "waiting": 0, "done": 3, "submitted": 3, "batches": 3}
    assert record.status == "completed"
    assert record.result == {"answer": "3 and 7"}
    # Each turn's batch is in the log before its answer: a restart re-attaches to it.
    for position, event in enumerate(events):
        if event["type"] == "turn":
            (before,) = [
                e
                for e in events[:position]
                if e["type"] == "log" and e.get("turnId") == event["turnId"]
            ]
            assert batch_record(before) == (
                event["response"]["batch"]["id"],
                turn_custom_id(receipt.run_id, event["turnId"], 0),
            )
            assert before["level"] == "info"
    assert anthropic_api.batches.created == 3
    assert anthropic_api.requests == []
    batched = anthropic_api.batches.requests
    # The second round carries the first tool result: the loop advanced hop by hop.
    second = batched[1]["params"]["messages"]
    assert second[-1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "3"}],
    }
    turns = [event for event in events if event["type"] == "turn"]
    assert [turn["response"]["batch"]["customId"] for turn in turns] == [
        request["custom_id"] for request in batched
    ]
    one_turn = cost_of(MODEL, Usage(input=400, output=40)).cost.total
    for turn in turns:
        assert turn["response"]["usage"]["cost"]["total"] == pytest.approx(one_turn / 2)
    operation = next(event for event in events if event["type"] == "operation")
    assert operation["usage"]["cost"]["total"] == pytest.approx(3 * one_turn / 2)
    assert operation["usage"]["input"] == 1200


# --- invariants ---------------------------------------------------------------------------------


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(alphabet="abcdefgh ", min_size=1, max_size=40), min_size=1, max_size=25),
    max_requests=st.integers(min_value=1, max_value=8),
    max_bytes=st.integers(min_value=300, max_value=1200),
)
async def test_every_turn_gets_its_own_answer_within_the_limits(
    texts: list[str], max_requests: int, max_bytes: int
) -> None:
    api = AnthropicApi()
    # Each batched request answered from its own content (the fake server's default answer).
    script = MessagesScript()
    api.batches._respond = lambda body: script.build(summary_reply(body), body)
    api.start()
    try:
        collector = MessageBatchCollector(
            api.provider.sdk_client,
            ModelBatches(
                max_requests=max_requests, max_bytes=max_bytes, window=1.0, sleep=Sleeps()
            ),
        )
        bodies = [
            {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
            for text in texts
        ]
        results = await asyncio.gather(*(collector.submit(body) for body in bodies))
        await collector.aclose()
    finally:
        api.stop()
    for text, result in zip(texts, results, strict=True):
        assert result.result["message"]["content"][0]["text"] == "SUMMARY: " + text[:20]
    assert len({result.custom_id for result in results}) == len(texts)
    views = api.batches.views()
    sizes = [view["request_counts"]["succeeded"] for view in views]
    assert sum(sizes) == len(texts)
    assert all(size <= max_requests for size in sizes)
    # Every batch but the last was closed by a limit: the next turn would not have fitted.
    assert len(views) >= math.ceil(len(texts) / max_requests)
