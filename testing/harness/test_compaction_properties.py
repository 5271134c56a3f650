"""Properties of compaction for any conversation and settings: the last user message is never
folded, a tool call is never parted from its result, what is kept stays in order, and a long
agent loop against a model with a small window sends no request that breaks these rules."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import define_tool
from flue_actors._harness.compaction import (
    CompactionPlan,
    Summary,
    apply_plan,
    plan_latest_exchange,
    plan_recent,
)
from flue_actors.models import ModelRequest
from flue_actors.testing import FakeModel, FakeToolCall, FakeTurn

from .support import make_harness

Message = dict[str, Any]


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Well-formed conversations: exchanges of a user message, tool-calling steps (each
    assistant's calls answered by tool results right after it) and, except perhaps the last
    exchange, a final answer; sometimes led by a previous summary."""
    messages: list[Message] = []
    if draw(st.booleans()):
        empty: CompactionPlan[Message] = CompactionPlan(previous=None, history=[], kept=[])
        messages.append({**apply_plan(empty, Summary("old"), 0)[0]})
    calls = 0
    exchanges = draw(st.integers(min_value=1, max_value=5))
    for number in range(exchanges):
        size = draw(st.integers(min_value=0, max_value=3000))
        messages.append(_message("user", [{"type": "text", "text": "u" * size}]))
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            ids = []
            for _ in range(draw(st.integers(min_value=1, max_value=2))):
                calls += 1
                ids.append(f"call_{calls}")
            content = [{"type": "toolCall", "id": i, "name": "t", "arguments": {}} for i in ids]
            messages.append(_message("assistant", content))
            for call_id in ids:
                size = draw(st.integers(min_value=0, max_value=4000))
                result = _message("toolResult", [{"type": "text", "text": "r" * size}])
                messages.append({**result, "toolCallId": call_id})
        if number < exchanges - 1 or draw(st.booleans()):
            size = draw(st.integers(min_value=0, max_value=2000))
            messages.append(_message("assistant", [{"type": "text", "text": "a" * size}]))
    return messages


def _message(role: str, content: list[dict[str, Any]]) -> Message:
    return {"role": role, "content": content, "timestamp": 0}


def _check_tool_pairs(messages: Sequence[Mapping[str, Any]]) -> None:
    called = [
        block["id"]
        for message in messages
        if message["role"] == "assistant"
        for block in message["content"]
        if block["type"] == "toolCall"
    ]
    answered = [message["toolCallId"] for message in messages if message["role"] == "toolResult"]
    assert sorted(called) == sorted(answered)
    # Each result comes after its call, in the run of results right after that assistant.
    for index, message in enumerate(messages):
        if message["role"] == "toolResult":
            before = index - 1
            while messages[before]["role"] == "toolResult":
                before -= 1
            ids = [b["id"] for b in messages[before]["content"] if b["type"] == "toolCall"]
            assert messages[before]["role"] == "assistant"
            assert message["toolCallId"] in ids


def _last_user(messages: list[Message]) -> Message | None:
    users = [m for m in messages if m["role"] == "user" and "compactionSummary" not in m]
    return users[-1] if users else None


@given(conversations(), st.integers(min_value=0, max_value=6000))
@settings(max_examples=300, deadline=None)
def test_automatic_plans_keep_the_request_and_every_tool_pair(
    messages: list[Message], keep_recent: int
) -> None:
    plan = plan_recent(messages, keep_recent)
    if plan is None:
        return
    summary = Summary("history", "steps" if plan.turn_prefix else None)
    after = apply_plan(plan, summary, 0)
    assert after[0]["role"] == "user"
    assert "compactionSummary" in after[0]
    assert after[1]["role"] != "toolResult"
    last = _last_user(messages)
    if last is not None:
        assert any(message is last for message in after)
    _check_tool_pairs(after)
    # What is kept is the conversation's own messages, in order, ending with its last one.
    positions = [next(i for i, m in enumerate(messages) if m is kept) for kept in after[1:]]
    assert positions == sorted(positions)
    assert after[-1] is messages[-1]
    assert plan.kept == messages[len(messages) - len(plan.kept) :]
    # Something was folded, and nothing both folded and kept.
    folded = [*plan.history, *plan.turn_prefix]
    assert folded
    assert not any(any(f is k for k in after) for f in folded)


@given(conversations())
@settings(max_examples=200, deadline=None)
def test_manual_plans_keep_the_latest_exchange(messages: list[Message]) -> None:
    plan = plan_latest_exchange(messages)
    last = _last_user(messages)
    if plan is None:
        return
    assert last is not None
    start = next(i for i, m in enumerate(messages) if m is last)
    assert apply_plan(plan, Summary("history"), 0)[1:] == messages[start:]


# --- through the agent loop ----------------------------------------------------------------------


class Page(BaseModel):
    page: int


async def _page(args: Page) -> str:
    return "x" * (200 + 97 * args.page % 1500)


PAGE = define_tool(name="page", description="Read a page.", input=Page, run=_page)
PROMPT = "Read every page, then answer."


@given(
    pages=st.integers(min_value=1, max_value=25),
    window=st.integers(min_value=2500, max_value=8000),
    keep_recent=st.integers(min_value=0, max_value=1500),
    calls_per_turn=st.integers(min_value=1, max_value=3),
)
@settings(max_examples=25, deadline=None)
def test_every_request_of_a_long_loop_holds_the_request_and_whole_tool_pairs(
    pages: int, window: int, keep_recent: int, calls_per_turn: int
) -> None:
    fake = FakeModel(context_window=window)
    read = {"pages": 0}

    def respond(request: ModelRequest) -> FakeTurn:
        if (request.system_prompt or "").startswith("You summarize"):
            return FakeTurn(text="summary")
        if read["pages"] >= pages:
            return FakeTurn(text="done")
        calls = []
        for _ in range(calls_per_turn):
            read["pages"] += 1
            calls.append(FakeToolCall("page", {"page": read["pages"]}, f"c{read['pages']}"))
        return FakeTurn(tool_calls=calls)

    fake.respond_with(respond)
    harness, sink = make_harness(fake, tools=[PAGE], compaction={"keep_recent_tokens": keep_recent})

    async def run() -> list[Message]:
        session = await harness.session()
        try:
            await session.prompt(PROMPT)
        except Exception:  # a window too small for even one page: the overflow surfaces
            assert "prompt is too long" in str(sink.of("operation")[0]["error"]["message"])
        return session.messages

    asyncio.run(run())
    event(f"compactions: {min(len(sink.of('compaction_start')), 3)}")
    for request in fake.requests:
        if (request.system_prompt or "").startswith("You summarize"):
            continue
        messages = list(request.messages)
        assert PROMPT in [
            "".join(b.get("text", "") for b in m["content"])
            for m in messages
            if m["role"] == "user"
        ]
        _check_tool_pairs(messages)
