"""Automatic compaction with the real Anthropic provider and SDK, against the Messages API
emulated at the HTTP layer (``anthropic_api``): the API's own 400 "prompt is too long" leads to a
compaction and one retry, and the usage the API reports drives the threshold."""

from __future__ import annotations

from typing import Any

import pytest

from flue_actors import AgentConfig, Harness, ModelRegistry, OperationFailedError
from flue_actors._clock import StepClock
from flue_actors._harness.compaction import SUMMARY_PREFIX
from flue_actors._ids import SequentialIds
from flue_actors.models import AnthropicProvider, ModelLimits, RetryPolicy
from flue_actors.testing import AnthropicApi, RecordingSink

MODEL = "anthropic/claude-haiku-4-5"


async def _no_wait(_seconds: float) -> None:
    return None


def _harness(sink: RecordingSink, **config: Any) -> Harness:
    return Harness(
        config=AgentConfig(model=MODEL, **config),
        models=ModelRegistry(retry=RetryPolicy(sleep=_no_wait)),
        sink=sink,
        clock=StepClock(),
        ids=SequentialIds(),
    )


def _texts(body: dict[str, Any]) -> list[str]:
    return [
        "".join(block["text"] for block in message["content"] if block["type"] == "text")
        for message in body["messages"]
    ]


def test_the_catalog_gives_the_window_and_output_limit() -> None:
    provider = AnthropicProvider(api_key="unused")
    assert provider.limits("claude-haiku-4-5-20251001") == ModelLimits(200_000, 64_000)
    assert provider.limits("claude-opus-4-1") == ModelLimits(200_000, 32_000)
    assert provider.limits("claude-future-9").context_window == 200_000


async def test_prompt_too_long_is_compacted_and_the_turn_retried(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.reply("first answer")
    anthropic_api.fail(kind="context_overflow")
    anthropic_api.reply("They talked about one.", usage={"input_tokens": 30, "output_tokens": 6})
    anthropic_api.reply("second answer", usage={"input_tokens": 20, "output_tokens": 2})
    sink = RecordingSink()
    session = await _harness(sink, compaction={"keep_recent_tokens": 1}).session()
    await session.prompt("one")

    response = await session.prompt("two")

    assert response.text == "second answer"
    [turn_error] = [turn for turn in sink.of("turn") if turn["isError"]]
    assert turn_error["response"]["error"]["code"] == "context_overflow"
    assert "prompt is too long" in turn_error["response"]["error"]["message"]
    [start] = sink.of("compaction_start")
    assert start["reason"] == "overflow"
    [done] = sink.of("compaction")
    assert (done["messagesBefore"], done["messagesAfter"], done["isError"]) == (3, 2, False)
    assert done["usage"]["input"] == 30
    overflowed, summarize, retried = anthropic_api.requests[1:]
    assert _texts(overflowed) == ["one", "first answer", "two"]
    assert "Summarize this conversation" in _texts(summarize)[0]
    assert "tools" not in summarize
    # 80% of the default reserve (20,000 tokens), plus the thinking budget the provider adds.
    assert summarize["max_tokens"] == 16000 + 8192
    assert _texts(retried) == [SUMMARY_PREFIX + "They talked about one.", "two"]
    assert response.usage.input == 30 + 20


async def test_the_usage_the_api_reports_drives_the_threshold(
    anthropic_api: AnthropicApi,
) -> None:
    # 181,000 tokens in a 200,000 window with 20,000 reserved: the next turn compacts first.
    anthropic_api.reply("first answer", usage={"input_tokens": 180_000, "output_tokens": 1_000})
    anthropic_api.reply("summary of one")
    anthropic_api.reply("second answer")
    sink = RecordingSink()
    session = await _harness(sink, compaction={"keep_recent_tokens": 1}).session()
    await session.prompt("one")
    await session.prompt("two")

    [start] = sink.of("compaction_start")
    assert start["reason"] == "threshold"
    assert start["estimatedTokens"] == 181_000 + 1  # "two" is estimated at one token
    assert _texts(anthropic_api.requests[2]) == [SUMMARY_PREFIX + "summary of one", "two"]


async def test_an_overflow_that_compaction_cannot_help_fails_the_prompt(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.fail(kind="context_overflow", message="prompt is too long: 250000 tokens")
    sink = RecordingSink()
    session = await _harness(sink).session()
    with pytest.raises(OperationFailedError, match="prompt is too long: 250000 tokens"):
        await session.prompt("a single enormous prompt")
    assert len(anthropic_api.requests) == 1
    assert sink.of("compaction_start") == []
