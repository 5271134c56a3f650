"""Automatic compaction (reference 1.3 ``compaction``, 1.12 ``compaction_start``): before a turn
when the conversation nears the model's window (reason ``threshold``), after the provider refused
a request as too long (reason ``overflow``, then the turn is retried once), the summary call's
own retries, ``compaction=False``, and a long agent loop that only finishes because it compacts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    AbortError,
    ActionContext,
    CompactionConfig,
    OperationFailedError,
    Usage,
    define_agent,
    define_agent_profile,
    define_tool,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._harness.compaction import PREFIX_HEADING, SUMMARY_PREFIX
from flue_actors._harness.context_budget import estimate_message_tokens
from flue_actors._harness.scope import AgentScope
from flue_actors._harness.tools import ToolBox
from flue_actors.models import ModelRequest
from flue_actors.testing import FakeModel, FakeToolCall, FakeTurn, FlueTestKit, RecordingSink
from flue_actors.testing._fake_model import count_tokens

from .support import make_harness


def _text(message: dict[str, Any]) -> str:
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")


def _is_summary_request(request: ModelRequest) -> bool:
    return (request.system_prompt or "").startswith("You summarize")


# --- threshold ---------------------------------------------------------------------------------


async def test_threshold_compacts_before_the_turn_that_would_pass_it() -> None:
    # A 4,000-token window and no known output limit: the reserve is a third of the window.
    fake = (
        FakeModel(context_window=4000)
        .reply("first answer", usage=Usage(input=3500, output=10))
        .reply("They discussed one.", usage=Usage(input=50, output=7))
        .reply("second answer", usage=Usage(input=40, output=3))
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    sink.events.clear()

    response = await session.prompt("two")

    assert response.text == "second answer"
    assert sink.types[:4] == ["operation_start", "agent_start", "log", "compaction_start"]
    [start] = sink.of("compaction_start")
    user_two = session.messages[1]
    assert start["reason"] == "threshold"
    assert start["estimatedTokens"] == 3510 + estimate_message_tokens(user_two)
    [log] = sink.of("log")
    assert log["level"] == "info"
    assert log["message"].startswith("[flue:compaction] Threshold reached")
    assert "window of 4000 with 1333 reserved" in log["message"]
    assert [turn["purpose"] for turn in sink.of("turn")] == ["compaction", "agent"]
    [done] = sink.of("compaction")
    assert (done["messagesBefore"], done["messagesAfter"]) == (3, 2)
    assert done["isError"] is False
    assert done["usage"]["totalTokens"] == 57
    assert done["operationId"] == start["operationId"] == sink.of("operation")[0]["operationId"]
    # The summary request gets the older exchange; the agent's next request the summary and "two".
    summarize, answer = fake.requests[1:]
    assert _is_summary_request(summarize)
    assert "user: one" in _text(summarize.messages[0])
    assert "assistant: first answer" in _text(summarize.messages[0])
    assert summarize.max_tokens == 1066  # 80% of the reserve
    assert [_text(message) for message in answer.messages] == [
        SUMMARY_PREFIX + "They discussed one.",
        "two",
    ]
    # The operation's usage includes the summary's.
    assert response.usage.total_tokens == 57 + 43
    assert sink.of("operation")[0]["usage"]["totalTokens"] == 100


async def test_below_the_threshold_nothing_happens() -> None:
    fake = FakeModel(context_window=4000).reply("a", usage=Usage(input=2000)).reply("b")
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    assert sink.of("compaction_start") == []
    assert len(session.messages) == 4


async def test_usage_from_before_a_compaction_is_not_counted_again() -> None:
    fake = (
        FakeModel(context_window=4000)
        .reply("first", usage=Usage(input=3500))
        .reply("summary")
        .reply("second", usage=Usage(input=100))
        .reply("third")
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    await session.prompt("three")
    # The 3,500 tokens reported for "first" described the conversation before it was compacted.
    assert len(sink.of("compaction_start")) == 1


async def test_compaction_false_turns_automatic_compaction_off() -> None:
    fake = (
        FakeModel(context_window=4000)
        .reply("first", usage=Usage(input=3900))
        .reply("second")
        .fail(kind="context_overflow")
    )
    harness, sink = make_harness(fake, compaction=False)
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    with pytest.raises(OperationFailedError, match="prompt is too long"):
        await session.prompt("three")
    assert sink.of("compaction_start") == []
    assert len(fake.requests) == 3


async def test_an_unknown_window_leaves_only_overflow_recovery() -> None:
    fake = FakeModel().reply("first", usage=Usage(input=10_000_000)).reply("second")
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    assert sink.of("compaction_start") == []


async def test_a_failed_threshold_compaction_lets_the_turn_go_ahead() -> None:
    fake = (
        FakeModel(context_window=4000)
        .reply("first", usage=Usage(input=3500))
        .fail(status=400)
        .reply("second")
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")

    assert (await session.prompt("two")).text == "second"

    [done] = sink.of("compaction")
    assert done["isError"] is True
    assert done["error"]["message"] == "Fake API error 400 (invalid_request_error)"
    assert done["messagesBefore"] == done["messagesAfter"] == 3
    error_log = [log for log in sink.of("log") if log["level"] == "error"]
    assert error_log[0]["message"].startswith("[flue:compaction] Compaction failed")
    assert [_text(m) for m in fake.requests[-1].messages] == ["one", "first", "two"]


async def test_the_summary_call_retries_transient_errors() -> None:
    fake = (
        FakeModel(context_window=4000)
        .reply("first", usage=Usage(input=3500))
        .fail(status=529)
        .reply("summary")
        .reply("second")
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    sink.events.clear()

    await session.prompt("two")

    compaction_turns = [t for t in sink.of("turn") if t["purpose"] == "compaction"]
    assert [turn["isError"] for turn in compaction_turns] == [True, False]
    assert compaction_turns[0]["response"]["error"]["code"] == "overloaded"
    retry = [log for log in sink.of("log") if log["level"] == "warn"]
    assert retry[0]["message"] == "[flue:model-retry] Retrying transient model error"
    assert retry[0]["attributes"]["attempt"] == 1
    [done] = sink.of("compaction")
    assert done["isError"] is False


async def test_the_summary_model_is_the_configured_one() -> None:
    fake = (
        FakeModel(context_window=4000)
        .reply("first", usage=Usage(input=3500))
        .reply("summary")
        .reply("second")
    )
    harness, _ = make_harness(
        fake, compaction={"keep_recent_tokens": 0, "model": "fake/summarizer"}
    )
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    assert [request.model for request in fake.requests] == ["echo", "summarizer", "echo"]


# --- overflow ----------------------------------------------------------------------------------


async def test_overflow_compacts_and_retries_the_turn_once() -> None:
    fake = (
        FakeModel()
        .reply("a")
        .reply("b")
        .fail(kind="context_overflow")
        .reply("They said one and two.", usage=Usage(input=30, output=6))
        .reply("answer", usage=Usage(input=20, output=2))
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 1})
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    sink.events.clear()

    response = await session.prompt("three")

    assert response.text == "answer"
    assert [(turn["purpose"], turn["isError"]) for turn in sink.of("turn")] == [
        ("agent", True),
        ("compaction", False),
        ("agent", False),
    ]
    [start] = sink.of("compaction_start")
    assert start["reason"] == "overflow"
    [done] = sink.of("compaction")
    assert (done["messagesBefore"], done["messagesAfter"]) == (5, 2)
    retried = fake.requests[-1]
    assert [_text(m) for m in retried.messages] == [
        SUMMARY_PREFIX + "They said one and two.",
        "three",
    ]
    # The user message is shown once, on the first attempt's turn.
    assert [event["message"]["role"] for event in sink.of("message_start")].count("user") == 1
    assert response.usage.total_tokens == 36 + 22
    assert sink.of("operation")[0]["isError"] is False


async def test_a_second_overflow_fails_the_prompt() -> None:
    fake = (
        FakeModel()
        .reply("a")
        .fail(kind="context_overflow")
        .reply("summary")
        .fail(kind="context_overflow")
    )
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 1})
    session = await harness.session()
    await session.prompt("one")
    with pytest.raises(OperationFailedError, match="prompt is too long"):
        await session.prompt("two")
    assert len(sink.of("compaction_start")) == 1
    assert fake.pending == 0


async def test_a_failed_overflow_compaction_surfaces_the_overflow() -> None:
    fake = FakeModel().reply("a").fail(kind="context_overflow").fail(status=401)
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 1})
    session = await harness.session()
    await session.prompt("one")
    with pytest.raises(OperationFailedError, match="prompt is too long"):
        await session.prompt("two")
    [done] = sink.of("compaction")
    assert done["isError"] is True


# --- a long agent loop -------------------------------------------------------------------------


class ReadArgs(BaseModel):
    page: int


async def _read_page(args: ReadArgs) -> str:
    return f"page {args.page}: " + "lorem ipsum " * 150  # about 450 tokens a page


READ_PAGE = define_tool(
    name="read_page", description="Read one page of the book.", input=ReadArgs, run=_read_page
)
PAGES = 30


def _reader(fake: FakeModel) -> FakeModel:
    """``fake`` as a model with a 3,000-token window that reads PAGES pages, one tool call a
    turn, then answers: far more than fits at once."""
    fake.context_window = 3000
    state = {"page": 0, "summaries": 0}

    def respond(request: ModelRequest) -> FakeTurn:
        if _is_summary_request(request):
            state["summaries"] += 1
            return FakeTurn(text=f"summary {state['summaries']}: read some pages")
        state["page"] += 1
        if state["page"] > PAGES:
            return FakeTurn(text="The book is about lorem ipsum.")
        page = state["page"]
        return FakeTurn(tool_calls=[FakeToolCall("read_page", {"page": page}, f"call_{page}")])

    return fake.respond_with(respond)


async def test_a_long_agent_loop_compacts_instead_of_overflowing() -> None:
    fake = _reader(FakeModel())
    harness, sink = make_harness(fake, tools=[READ_PAGE], compaction={"keep_recent_tokens": 600})
    session = await harness.session()

    response = await session.prompt("Read the whole book, page by page, then say what it is about.")

    assert response.text == "The book is about lorem ipsum."
    starts = sink.of("compaction_start")
    assert len(starts) >= 3
    assert {start["reason"] for start in starts} <= {"threshold", "overflow"}
    assert all(not done["isError"] for done in sink.of("compaction"))
    # Inside one request's work, its first steps are folded on their own (compaction_prefix).
    assert "compaction_prefix" in {turn["purpose"] for turn in sink.of("turn")}
    agent_requests = [r for r in fake.requests if not _is_summary_request(r)]
    for request in agent_requests:
        texts = [_text(m) for m in request.messages if m["role"] == "user"]
        assert "Read the whole book, page by page, then say what it is about." in texts
    # Every page was read once, and the model never got a request its window refused twice.
    results = [e for e in sink.of("tool") if e["toolName"] == "read_page"]
    assert len(results) == PAGES
    last = session.messages
    assert last[0]["content"][0]["text"].startswith(SUMMARY_PREFIX) or last[0]["content"][0][
        "text"
    ].startswith(PREFIX_HEADING)
    assert count_tokens(agent_requests[-1]) <= 3000


async def _read_the_book(ctx: ActionContext[None]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt("Read the book.")).text


reading = define_workflow(
    agent=define_agent(
        model="fake/reader", tools=[READ_PAGE], compaction={"keep_recent_tokens": 600}
    ),
    run=_read_the_book,
)


def test_a_long_loop_compacts_in_a_workflow_run(flue: FlueTestKit, fake_model: FakeModel) -> None:
    # The kit's fake_model fixture, given a window: the run completes and its record and log
    # hold the compaction events as they hold every other.
    _reader(fake_model)

    result = flue.run(reading)

    assert result.status == "completed"
    assert result.result == "The book is about lorem ipsum."
    assert result.events_of("compaction_start")
    assert len(result.events_of("compaction")) == len(result.events_of("compaction_start"))
    operation = result.events_of("operation")[0]
    summaries = [t for t in result.events_of("turn") if t["purpose"].startswith("compaction")]
    assert summaries
    assert operation["usage"]["totalTokens"] >= sum(
        t["response"]["usage"]["totalTokens"] for t in summaries
    )


# --- abort and subagents -----------------------------------------------------------------------


async def test_an_abort_during_compaction_ends_it_as_an_error() -> None:
    summarizing = asyncio.Event()

    async def respond(request: ModelRequest) -> str:
        summarizing.set()
        await asyncio.Event().wait()  # until cancelled
        return "never"

    fake = FakeModel(context_window=4000).reply("first", usage=Usage(input=3500))
    fake.respond_with(respond)
    harness, sink = make_harness(fake, compaction={"keep_recent_tokens": 0})
    session = await harness.session()
    await session.prompt("one")
    before = session.messages

    handle = session.prompt("two")
    await asyncio.wait_for(summarizing.wait(), 5)
    handle.abort("enough")
    with pytest.raises(AbortError):
        await handle

    [done] = sink.of("compaction")
    assert done["isError"] is True
    assert done["error"]["name"] == "AbortError"
    assert sink.of("turn")[-1]["response"] == {"finishReason": "aborted"}
    # The conversation is as the prompt left it: nothing folded.
    assert session.messages[:2] == before
    assert [_text(m) for m in session.messages] == ["one", "first", "two"]


@pytest.mark.parametrize("setting", [False, CompactionConfig(keep_recent_tokens=5)])
def test_a_task_child_inherits_the_compaction_setting(setting: Any) -> None:
    harness, _sink = make_harness(FakeModel(), compaction=setting)
    sink, clock = RecordingSink(), StepClock()
    scope = AgentScope.root(harness.config, ToolBox([], sink=sink, clock=clock))
    profile = define_agent_profile(name="researcher")
    for chosen in (None, profile):
        child = scope.delegate(chosen, model=None, thinking_level=None, harness=harness)
        assert child.compaction == setting
    # A profile's own setting wins over the delegating session's.
    own = define_agent_profile(name="terse", compaction={"keep_recent_tokens": 1})
    child = scope.delegate(own, model=None, thinking_level=None, harness=harness)
    assert child.compaction == CompactionConfig(keep_recent_tokens=1)


async def test_an_empty_summary_is_a_failed_compaction() -> None:
    fake = FakeModel().reply("a").reply("b").reply("   ")
    harness, sink = make_harness(fake)
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    before = session.messages
    with pytest.raises(OperationFailedError, match="empty summary"):
        await session.compact()
    assert session.messages == before
    assert sink.of("compaction")[0]["isError"] is True
