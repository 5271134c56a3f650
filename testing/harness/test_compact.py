"""``session.compact()`` (reference 1.5, 1.12): events, the summary turn, the kept exchange,
and the no-op when there is nothing older than the latest exchange."""

from __future__ import annotations

import pytest

from flue_actors import OperationFailedError, Usage
from flue_actors._harness.compaction import SUMMARY_PREFIX
from flue_actors.testing import FakeModel

from .support import make_harness


async def test_compact_summarizes_older_messages() -> None:
    fake = (
        FakeModel()
        .reply("first answer")
        .reply("second answer")
        .reply("They talked about one and two.", usage=Usage(input=40, output=8))
        .reply("after")
    )
    harness, sink = make_harness(fake)
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    sink.events.clear()

    result = await session.compact()  # type: ignore[func-returns-value]  # pinned: it returns nothing

    assert result is None
    assert sink.types == [
        "operation_start",
        "compaction_start",
        "turn_start",
        "turn",
        "compaction",
        "operation",
        "idle",
    ]
    [start] = sink.of("compaction_start")
    assert start["reason"] == "manual"
    assert start["estimatedTokens"] > 0
    [turn_start] = sink.of("turn_start")
    [turn] = sink.of("turn")
    assert turn_start["purpose"] == turn["purpose"] == "compaction"
    assert turn["isError"] is False
    [done] = sink.of("compaction")
    assert (done["messagesBefore"], done["messagesAfter"]) == (4, 3)
    assert done["isError"] is False
    assert done["usage"]["input"] == 40
    [operation] = sink.of("operation")
    assert operation["operationKind"] == "compact"
    assert operation["usage"]["totalTokens"] == 48
    # The summary replaces the first exchange; the latest one is kept verbatim.
    summary, user, assistant = session.messages
    assert summary["content"][0]["text"] == SUMMARY_PREFIX + "They talked about one and two."
    assert user["content"][0]["text"] == "two"
    assert assistant["content"][0]["text"] == "second answer"
    summarize = fake.requests[2]
    assert summarize.tools == ()
    assert "user: one" in summarize.messages[0]["content"][0]["text"]
    assert "assistant: first answer" in summarize.messages[0]["content"][0]["text"]

    await session.prompt("three")
    assert [m["role"] for m in fake.requests[3].messages] == ["user", "user", "assistant", "user"]


async def test_compact_is_a_no_op_with_nothing_older() -> None:
    fake = FakeModel().reply("only answer")
    harness, sink = make_harness(fake)
    session = await harness.session()
    await session.compact()  # empty conversation
    await session.prompt("only")
    sink.events.clear()

    await session.compact()

    assert sink.types == ["operation_start", "operation", "idle"]
    assert len(fake.requests) == 1
    assert len(session.messages) == 2


async def test_a_failed_compaction_leaves_the_conversation() -> None:
    fake = FakeModel().reply("a").reply("b").fail(status=400)
    harness, sink = make_harness(fake)
    session = await harness.session()
    await session.prompt("one")
    await session.prompt("two")
    before = session.messages

    with pytest.raises(OperationFailedError, match="compact failed"):
        await session.compact()

    [done] = sink.of("compaction")
    assert done["isError"] is True
    assert done["messagesAfter"] == done["messagesBefore"] == 4
    assert session.messages == before
