"""The fake Messages API server (``python -m flue_actors.testing.messages_server``), through the
kit's ``messages_server`` fixture: the official SDK and the project's provider read its answers
as the API's; it answers unscripted requests from the request, scripted ones in order, late ones
late, and logs what it was sent."""

from __future__ import annotations

import asyncio
import os
import time

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam
from pydantic import BaseModel

from flue_actors import AgentConfig, Harness, ModelRegistry, define_tool
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors.models import AnthropicProvider
from flue_actors.testing import RecordingSink
from flue_actors.testing.messages_server import MessagesServer, MessagesServerError

MODEL = "claude-haiku-4-5"
TEXT = "Please summarize this long document about actors."


def _client(server: MessagesServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-fake", base_url=server.url, max_retries=0)


async def test_unscripted_answers_follow_the_request(messages_server: MessagesServer) -> None:
    messages: list[MessageParam] = [{"role": "user", "content": [{"type": "text", "text": TEXT}]}]
    async with _client(messages_server) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=messages)
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
            deltas = [text async for text in stream.text_stream]
            streamed = await stream.get_final_message()

    expected = "SUMMARY: " + TEXT[:20]
    assert [block.text for block in message.content if block.type == "text"] == [expected]
    assert message.stop_reason == "end_turn"
    assert "".join(deltas) == expected
    assert len(deltas) == 2
    assert [block.text for block in streamed.content if block.type == "text"] == [expected]
    assert streamed.usage.input_tokens == message.usage.input_tokens > 10
    logged = messages_server.requests()
    assert [(entry["method"], entry["path"]) for entry in logged] == [("POST", "/v1/messages")] * 2
    assert logged[0]["body"]["messages"] == messages
    assert "stream" not in logged[0]["body"]
    assert logged[1]["body"]["stream"] is True


class AddInput(BaseModel):
    a: int
    b: int


async def _add(args: AddInput) -> int:
    return args.a + args.b


async def test_scripted_answers_drive_the_real_provider(messages_server: MessagesServer) -> None:
    """Thinking, a tool call and text, queued on the server, read back by the provider the
    fixture's environment configures (``ANTHROPIC_BASE_URL``)."""
    assert os.environ["ANTHROPIC_BASE_URL"] == messages_server.url
    messages_server.reply("", thinking="Let me add.", tool_calls=[["add", {"a": 20, "b": 22}]])
    messages_server.reply("It is 42.")
    sink = RecordingSink()
    add = define_tool(name="add", description="Add two integers.", input=AddInput, run=_add)
    models = ModelRegistry()
    provider = models.resolve(f"anthropic/{MODEL}").provider
    assert isinstance(provider, AnthropicProvider)
    harness = Harness(
        config=AgentConfig(model=f"anthropic/{MODEL}", tools=[add]),
        models=models,
        sink=sink,
        clock=StepClock(),
        ids=SequentialIds(),
    )
    session = await harness.session()
    try:
        assert (await session.prompt("What is 20 + 22?")).text == "It is 42."
        # The script is used up: the default answer again.
        assert (await session.prompt("And now?")).text == "SUMMARY: And now?"
    finally:
        await provider.aclose()  # its connections, before this test's event loop closes

    tool = sink.of("tool")[0]
    assert (tool["toolCallId"], tool["isError"]) == ("toolu_1", False)
    second = messages_server.requests()[1]["body"]["messages"]
    assert second[1]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me add.",
        "signature": "sig-0",
    }
    assert second[2]["content"][0]["tool_use_id"] == "toolu_1"


async def test_failures_are_the_apis_errors(messages_server: MessagesServer) -> None:
    messages_server.fail(status=529).fail(status=429, retry_after=3).fail(
        kind="stream_cut", after_chunks=1
    )
    messages: list[MessageParam] = [{"role": "user", "content": "hi"}]
    async with _client(messages_server) as client:
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await client.messages.create(model=MODEL, max_tokens=8, messages=messages)
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(model=MODEL, max_tokens=8, messages=messages)
        with pytest.raises(anthropic.APIStatusError) as cut:
            async with client.messages.stream(
                model=MODEL, max_tokens=8, messages=messages
            ) as stream:
                await stream.get_final_message()

    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert limited.value.response.headers["retry-after"] == "3"
    assert "Overloaded" in str(cut.value)


async def test_delay_answers_late_and_a_client_may_leave(messages_server: MessagesServer) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "[delay=300] x"}],
    }
    async with httpx.AsyncClient(base_url=messages_server.url) as http:
        began = time.monotonic()
        answered = await http.post("/v1/messages", json=body)
        took = time.monotonic() - began
        body["messages"] = [{"role": "user", "content": "[delay=60000] never"}]
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/messages", json=body, timeout=0.2)
        health = await asyncio.wait_for(http.get("/healthz"), 5)
    assert answered.status_code == 200
    assert took >= 0.3
    assert answered.json()["content"][0]["text"] == "SUMMARY: [delay=300] x"
    assert health.json() == {"ok": True}


async def test_bad_requests_get_the_apis_error_envelope(messages_server: MessagesServer) -> None:
    async with httpx.AsyncClient(base_url=messages_server.url) as http:
        not_json = await http.post("/v1/messages", content=b"{nope")
        not_object = await http.post("/v1/messages", json=[1])
        elsewhere = await http.get("/v1/models")
        bad_script = await http.post("/_script", json=[{"answer": {}}])
    assert not_json.status_code == not_object.status_code == bad_script.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["type"] == "not_found_error"
    with pytest.raises(MessagesServerError):
        messages_server.reply("x", tool_calls=[["only-a-name"]])
    assert [entry["path"] for entry in messages_server.requests()] == ["/v1/messages"] * 2 + [
        "/v1/models"
    ]


def test_each_test_gets_an_empty_script_and_its_own_requests(
    flue_messages_server_process: MessagesServer,
) -> None:
    before = flue_messages_server_process.for_test()
    before.reply("left over")
    httpx.post(before.url + "/v1/messages", json={"messages": []}).raise_for_status()
    after = flue_messages_server_process.for_test()
    assert after.requests() == []
    assert after.clear() == 0  # "left over" was dropped when this view was made
    assert len(before.requests()) == 1
