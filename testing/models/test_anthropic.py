"""The Anthropic provider against the Messages API emulated at the HTTP layer (``anthropic_api``):
request mapping, streaming, tools, thinking, images, usage and cost, errors and retries."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    AbortError,
    AgentConfig,
    Harness,
    ModelRegistry,
    OperationFailedError,
    define_tool,
)
from flue_actors._clock import StepClock
from flue_actors._harness.redaction import IMAGE_DATA_OMITTED
from flue_actors._ids import SequentialIds
from flue_actors.errors import ModelRequestError
from flue_actors.models import AnthropicProvider, ModelRequest, RetryPolicy, TextDelta
from flue_actors.testing import AnthropicApi, RecordingSink

MODEL = "anthropic/claude-haiku-4-5"


class NoWait:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


class AddInput(BaseModel):
    a: int
    b: int


async def _add(args: AddInput) -> int:
    return args.a + args.b


ADD = define_tool(name="add", description="Add two integers.", input=AddInput, run=_add)


def harness(sink: RecordingSink, sleep: Any = None, jitter: float = 0.0, **config: Any) -> Harness:
    retry = RetryPolicy(sleep=sleep or NoWait(), jitter=lambda: jitter)
    config.setdefault("model", MODEL)
    return Harness(
        config=AgentConfig(**config),
        models=ModelRegistry(retry=retry),  # the built-in provider, aimed by the fixture's env
        sink=sink,
        clock=StepClock(),
        ids=SequentialIds(),
    )


# --- a streamed turn ---------------------------------------------------------------------------


async def test_streamed_text_turn_events_usage_and_cost(anthropic_api: AnthropicApi) -> None:
    anthropic_api.reply(
        "Hello world",
        chunks=["Hel", "lo ", "world"],
        usage={
            "input_tokens": 1000,
            "output_tokens": 200,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 10,
        },
    )
    sink = RecordingSink()
    session = await harness(sink).session()
    response = await session.prompt("Say hello")

    assert response.text == "Hello world"
    assert response.model.provider == "anthropic"
    assert [event["text"] for event in sink.of("text_delta")] == ["Hel", "lo ", "world"]
    usage = response.usage
    assert (usage.input, usage.output, usage.cache_read, usage.cache_write) == (1000, 200, 100, 10)
    # claude-haiku-4-5: $1 in, $5 out, $0.10 cache read, $1.25 cache write per million tokens.
    assert usage.cost.input == pytest.approx(1000 * 1.0e-6)
    assert usage.cost.output == pytest.approx(200 * 5.0e-6)
    assert usage.cost.cache_read == pytest.approx(100 * 0.10e-6)
    assert usage.cost.cache_write == pytest.approx(10 * 1.25e-6)

    turn = sink.of("turn")[0]
    assert turn["isError"] is False
    assert turn["request"]["api"] == "anthropic-messages"
    assert turn["response"]["finishReason"] == "stop"
    assert turn["response"]["responseId"].startswith("msg_")
    assert turn["response"]["responseModel"] == "claude-haiku-4-5"
    ends = sink.of("message_end")
    assert ends[-1]["message"]["content"] == [{"type": "text", "text": "Hello world"}]
    types = [event["type"] for event in sink.events]
    assert types.index("message_end", types.index("text_delta")) > max(
        i for i, t in enumerate(types) if t == "text_delta"
    )
    operation = sink.of("operation")[0]
    assert operation["usage"]["totalTokens"] == 1310


async def test_request_carries_system_prompt_max_tokens_and_key(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.reply("ok")
    session = await harness(
        RecordingSink(), instructions="Be brief.", thinking_level="off"
    ).session()
    await session.prompt("hi")
    body = anthropic_api.requests[0]
    assert body["model"] == "claude-haiku-4-5"
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 8192
    assert body["stream"] is True
    assert "thinking" not in body
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    headers = anthropic_api.headers[0]
    # SDK 2.x sends the key as a bearer token; older ones as x-api-key.
    assert (
        headers.get("authorization") == "Bearer sk-ant-test"
        or headers.get("x-api-key") == "sk-ant-test"
    )


@pytest.mark.parametrize(
    ("level", "budget"),
    [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384), ("xhigh", 32768)],
)
async def test_thinking_level_maps_to_a_budget(
    anthropic_api: AnthropicApi, level: str, budget: int
) -> None:
    anthropic_api.reply("ok")
    session = await harness(RecordingSink(), thinking_level=level).session()
    await session.prompt("think")
    body = anthropic_api.requests[0]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    # The budget comes on top of the answer's tokens, within the model's 64000 ceiling.
    assert body["max_tokens"] == min(64000, 8192 + budget)


async def test_thinking_blocks_stream_as_thinking_events_and_are_sent_back_signed(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.reply("", thinking="Let me add.", tool_calls=[("add", {"a": 1, "b": 2})])
    anthropic_api.reply("3")
    sink = RecordingSink()
    session = await harness(sink, tools=[ADD]).session()
    assert (await session.prompt("1+2?")).text == "3"

    thinking = [e for e in sink.events if e["type"].startswith("thinking")]
    assert [e["type"] for e in thinking[:3]] == ["thinking_start", "thinking_delta", "thinking_end"]
    assert thinking[1]["delta"] == "Let me add."
    assert thinking[2]["content"] == "Let me add."
    assert {e["contentIndex"] for e in thinking[:3]} == {0}
    # The signed thinking block goes back with the tool use, as the API requires.
    assistant = anthropic_api.requests[1]["messages"][1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "Let me add.",
        "signature": "sig-0",
    }


async def test_tool_calls_round_trip(anthropic_api: AnthropicApi) -> None:
    anthropic_api.reply("", tool_calls=[("add", {"a": 20, "b": 22}, "toolu_abc")])
    anthropic_api.reply("The answer is 42.")
    sink = RecordingSink()
    session = await harness(sink, tools=[ADD]).session()
    response = await session.prompt("What is 20 + 22?")
    assert response.text == "The answer is 42."

    first = anthropic_api.requests[0]
    tools = {tool["name"]: tool for tool in first["tools"]}  # the workspace tools come too
    assert tools["add"]["description"] == "Add two integers."
    assert tools["add"]["input_schema"]["properties"].keys() == {"a", "b"}
    call = sink.of("turn")[0]["response"]["output"]["content"][0]
    assert call == {
        "type": "toolCall",
        "id": "toolu_abc",
        "name": "add",
        "arguments": {"a": 20, "b": 22},
    }
    assert sink.of("turn")[0]["response"]["finishReason"] == "toolUse"
    tool = sink.of("tool")[0]
    assert (tool["toolCallId"], tool["isError"]) == ("toolu_abc", False)

    second = anthropic_api.requests[1]["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_abc", "name": "add", "input": {"a": 20, "b": 22}}
        ],
    }
    assert second[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_abc",
                "content": [{"type": "text", "text": "42"}],
            }
        ],
    }


async def test_image_goes_to_the_api_but_never_into_an_event(anthropic_api: AnthropicApi) -> None:
    data = base64.b64encode(b"\x89PNG fake image bytes " * 20).decode()
    anthropic_api.reply("A picture of bytes.")
    sink = RecordingSink()
    session = await harness(sink).session()
    await session.prompt(
        "What is this?", images=[{"type": "image", "data": data, "mimeType": "image/png"}]
    )

    sent = anthropic_api.requests[0]["messages"][0]["content"]
    assert sent[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": data},
    }
    for event in sink.events:
        assert data not in json.dumps(event), event["type"]
    user = sink.of("message_start")[0]["message"]
    assert user["content"][1] == {
        "type": "image",
        "data": IMAGE_DATA_OMITTED,
        "mimeType": "image/png",
    }
    assert sink.of("agent_end")[0]["messages"][0]["content"][1]["data"] == IMAGE_DATA_OMITTED
    # The conversation itself keeps the bytes, for the next turn.
    assert session.messages[0]["content"][1]["data"] == data


async def test_non_streamed_message_parses(anthropic_api: AnthropicApi) -> None:
    # The emulation answers stream=false too (with the SDK's plain create()).
    anthropic_api.reply("plain", tool_calls=[("add", {"a": 1, "b": 1})])
    from anthropic import AsyncAnthropic

    client = AsyncAnthropic(api_key="k", base_url=anthropic_api.base_url, max_retries=0)
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text"
    await client.close()


# --- errors and retries ------------------------------------------------------------------------


async def test_429_with_retry_after_is_retried_after_a_warn_log(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.fail(status=429, retry_after=7).reply("done")
    sink, sleep = RecordingSink(), NoWait()
    session = await harness(sink, sleep=sleep).session()
    assert (await session.prompt("go")).text == "done"

    assert len(anthropic_api.requests) == 2  # SDK retries are off: one request per attempt
    assert sleep.sleeps == [7.0]  # retry-after (7 s) beats the 1.5 s backoff
    log = sink.of("log")[0]
    assert log["level"] == "warn"
    assert log["message"] == "[flue:model-retry] Retrying transient model error"
    assert log["attributes"]["attempt"] == 1
    assert log["attributes"]["delayMs"] == 7000
    assert log["attributes"]["error"]["code"] == "rate_limited"
    turns = sink.of("turn")
    assert [turn["isError"] for turn in turns] == [True, False]
    assert turns[0]["response"]["error"]["code"] == "rate_limited"


async def test_529_overloaded_is_retried(anthropic_api: AnthropicApi) -> None:
    anthropic_api.fail(status=529).fail(status=503).reply("done")
    sink, sleep = RecordingSink(), NoWait()
    session = await harness(sink, sleep=sleep).session()
    assert (await session.prompt("go")).text == "done"
    assert sleep.sleeps == [1.5, 3.0]
    assert [log["attributes"]["error"]["code"] for log in sink.of("log")] == [
        "overloaded",
        "server_error",
    ]


async def test_stream_cut_mid_answer_is_retried(anthropic_api: AnthropicApi) -> None:
    anthropic_api.fail(kind="stream_cut", after_chunks=2).reply("whole")
    sink = RecordingSink()
    session = await harness(sink).session()
    assert (await session.prompt("go")).text == "whole"
    assert [event["text"] for event in sink.of("text_delta")] == ["chunk1 ", "chunk2 ", "whole"]
    assert sink.of("turn")[0]["response"]["error"]["code"] == "overloaded"


async def test_transient_errors_give_up_after_three_retries(anthropic_api: AnthropicApi) -> None:
    for _ in range(4):
        anthropic_api.fail(status=500)
    sink, sleep = RecordingSink(), NoWait()
    session = await harness(sink, sleep=sleep).session()
    with pytest.raises(OperationFailedError, match="prompt failed: Anthropic API error 500"):
        await session.prompt("go")
    assert len(anthropic_api.requests) == 4
    assert sleep.sleeps == [1.5, 3.0, 6.0]
    assert len(sink.of("turn")) == 4


async def test_context_overflow_is_not_retried(anthropic_api: AnthropicApi) -> None:
    anthropic_api.fail(kind="context_overflow")
    sink = RecordingSink()
    session = await harness(sink).session()
    with pytest.raises(OperationFailedError, match="prompt is too long") as caught:
        await session.prompt("go")
    assert isinstance(caught.value.__cause__, ModelRequestError)
    assert caught.value.__cause__.code == "context_overflow"
    assert caught.value.__cause__.transient is False
    assert len(anthropic_api.requests) == 1
    # Not retried: one prompt is all the conversation holds, so there is nothing to compact.
    [log] = sink.of("log")
    assert "nothing to compact" in log["message"]
    assert sink.of("compaction_start") == []
    assert sink.of("operation")[0]["isError"] is True


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_permanent(anthropic_api: AnthropicApi, status: int) -> None:
    anthropic_api.fail(status=status)
    provider = anthropic_api.provider
    with pytest.raises(ModelRequestError) as caught:
        await provider.complete(ModelRequest(model="claude-haiku-4-5", messages=[]), lambda _: None)
    assert caught.value.transient is False
    assert len(anthropic_api.requests) == 1


async def test_429_maps_to_a_transient_error_with_retry_after(anthropic_api: AnthropicApi) -> None:
    anthropic_api.fail(status=429, retry_after=1.5)
    with pytest.raises(ModelRequestError) as caught:
        await anthropic_api.provider.complete(
            ModelRequest(model="claude-haiku-4-5", messages=[]), lambda _: None
        )
    assert (caught.value.transient, caught.value.code, caught.value.retry_after) == (
        True,
        "rate_limited",
        1.5,
    )
    assert len(anthropic_api.requests) == 1  # max_retries=0


async def test_connection_refused_is_transient() -> None:
    # Port 9 on loopback: nothing listens; no fixture, so this is a real connection attempt.
    provider = AnthropicProvider(api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(ModelRequestError) as caught:
        await provider.complete(ModelRequest(model="claude-haiku-4-5", messages=[]), lambda _: None)
    assert caught.value.transient is True
    assert caught.value.code == "connection"


async def test_missing_key_fails_at_the_first_call_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    models = ModelRegistry()  # no key needed to build it, nor to resolve
    resolved = models.resolve(MODEL)
    with pytest.raises(ModelRequestError, match="ANTHROPIC_API_KEY") as caught:
        await resolved.provider.complete(
            ModelRequest(model="claude-haiku-4-5", messages=[]), lambda _: None
        )
    assert caught.value.transient is False

    sink = RecordingSink()
    session = await harness(sink).session()
    with pytest.raises(OperationFailedError, match="ANTHROPIC_API_KEY is not set"):
        await session.prompt("hi")
    assert sink.of("log") == []  # not retried


# --- aborts ------------------------------------------------------------------------------------


async def test_abort_during_backoff_makes_no_further_call(anthropic_api: AnthropicApi) -> None:
    anthropic_api.fail(status=429, retry_after=30)
    sleeping = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(3600)

    sink = RecordingSink()
    session = await harness(sink, sleep=slow_sleep).session()
    handle = session.prompt("go")
    await asyncio.wait_for(sleeping.wait(), 5)
    handle.abort("stop now")
    with pytest.raises(AbortError):
        await handle
    assert len(anthropic_api.requests) == 1
    assert sink.of("operation")[0]["isError"] is True


async def test_abort_mid_stream_closes_the_stream(anthropic_api: AnthropicApi) -> None:
    started = anthropic_api.stall()
    sink = RecordingSink()
    session = await harness(sink).session()
    handle = session.prompt("go")
    await asyncio.wait_for(started.wait(), 5)
    handle.abort()
    with pytest.raises(AbortError):
        await asyncio.wait_for(handle, 5)
    assert anthropic_api.streams_closed == 1
    assert sink.of("turn")[-1]["response"]["finishReason"] == "aborted"


async def test_provider_call_cancelled_mid_stream_stops_promptly(
    anthropic_api: AnthropicApi,
) -> None:
    started = anthropic_api.stall()
    deltas: list[Any] = []
    task = asyncio.create_task(
        anthropic_api.provider.complete(
            ModelRequest(model="claude-haiku-4-5", messages=[]), deltas.append
        )
    )
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert anthropic_api.streams_closed == 1
    assert not any(isinstance(d, TextDelta) for d in deltas)
