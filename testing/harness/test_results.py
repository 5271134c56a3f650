"""Structured results (reference 1.5): ``prompt(text, result=...)`` with the per-call
``finish`` / ``give_up`` tools, reminders, the attempt ceiling and summed usage."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flue_actors import (
    AgentConfig,
    DefinitionError,
    FlueError,
    PromptResultResponse,
    ResultUnavailableError,
    ToolNameConflictError,
    Usage,
    define_agent_profile,
    define_tool,
)
from flue_actors._definitions import BUILTIN_TOOL_NAMES
from flue_actors._harness.results import FOOTER, MAX_FOLLOWUPS, REMINDER
from flue_actors.testing import FakeModel, FakeToolCall

from .support import make_harness


class Person(BaseModel):
    name: str
    age: int


def finish(arguments: dict[str, object], id: str) -> FakeToolCall:
    return FakeToolCall("finish", arguments, id)


async def test_finish_resolves_to_the_validated_data() -> None:
    fake = FakeModel().reply(tool_calls=[finish({"name": "Ada", "age": 36}, "t1")])
    harness, sink = make_harness(fake)
    session = await harness.session()

    response = await session.prompt("Who?", result=Person)

    assert isinstance(response, PromptResultResponse)
    assert response.data == Person(name="Ada", age=36)
    assert (response.model.provider, response.model.id) == ("fake", "echo")
    # One model call: a valid finish ends the loop without another turn.
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.messages[0]["content"][0]["text"] == "Who?" + FOOTER
    tools = {tool.name: tool for tool in request.tools}
    assert set(tools) == set(BUILTIN_TOOL_NAMES) | {"finish", "give_up"}
    assert tools["finish"].parameters["properties"].keys() == {"name", "age"}
    assert tools["give_up"].parameters["required"] == ["reason"]
    [start] = sink.of("tool_start")
    [done] = sink.of("tool")
    assert (start["toolName"], start["toolCallId"]) == ("finish", "t1")
    assert (done["toolName"], done["isError"]) == ("finish", False)
    [operation] = sink.of("operation")
    assert operation["result"] == {"data": {"name": "Ada", "age": 36}}
    assert sink.types[-2:] == ["operation", "idle"]


async def test_invalid_finish_is_a_tool_error_and_the_model_retries() -> None:
    fake = (
        FakeModel()
        .reply(tool_calls=[finish({"name": "Ada", "age": "old"}, "bad")])
        .reply(tool_calls=[finish({"name": "Ada", "age": 36}, "good")])
    )
    harness, sink = make_harness(fake)

    response = await (await harness.session()).prompt("Who?", result=Person)

    assert response.data.age == 36
    first, second = sink.of("tool")
    assert (first["toolCallId"], first["isError"]) == ("bad", True)
    assert "Invalid result" in first["result"]["content"][0]["text"]
    assert (second["toolCallId"], second["isError"]) == ("good", False)
    # The model saw its error result before the second try.
    assert fake.requests[1].messages[-1]["role"] == "toolResult"
    assert fake.requests[1].messages[-1]["isError"] is True


async def test_give_up_raises_result_unavailable() -> None:
    fake = FakeModel().reply(
        "I cannot tell.", tool_calls=[FakeToolCall("give_up", {"reason": "no data"}, "g1")]
    )
    harness, sink = make_harness(fake)

    with pytest.raises(ResultUnavailableError) as caught:
        await (await harness.session()).prompt("Who?", result=Person)

    error = caught.value
    assert not isinstance(error, FlueError)
    assert str(error) == "The agent gave up: no data"
    assert (error.reason, error.assistant_text) == ("no data", "I cannot tell.")
    [operation] = sink.of("operation")
    assert operation["isError"] is True
    assert operation["error"]["name"] == "ResultUnavailableError"
    assert [event["toolName"] for event in sink.of("tool")] == ["give_up"]


async def test_a_turn_without_finish_gets_a_reminder() -> None:
    fake = (
        FakeModel().reply("Ada, 36.").reply(tool_calls=[finish({"name": "Ada", "age": 36}, "t1")])
    )
    harness, _sink = make_harness(fake)

    response = await (await harness.session()).prompt("Who?", result=Person)

    assert response.data.name == "Ada"
    assert fake.requests[1].messages[-1]["content"][0]["text"] == REMINDER
    assert fake.requests[1].messages[-2]["content"][0]["text"] == "Ada, 36."


async def test_the_ceiling_is_33_attempts() -> None:
    fake = FakeModel().respond_with(lambda _request: "no tools for me")
    harness, sink = make_harness(fake)

    with pytest.raises(ResultUnavailableError) as caught:
        await (await harness.session()).prompt("Who?", result=Person)

    assert MAX_FOLLOWUPS == 32
    assert str(caught.value) == "Agent did not call `finish` or `give_up` after 33 attempts."
    assert caught.value.assistant_text == "no tools for me"
    assert len(fake.requests) == 33
    assert len(sink.of("operation")) == 1


async def test_a_transient_failure_then_finish() -> None:
    fake = FakeModel().fail(status=529).reply(tool_calls=[finish({"name": "Ada", "age": 1}, "t")])
    harness, sink = make_harness(fake)

    response = await (await harness.session()).prompt("Who?", result=Person)

    assert response.data.age == 1
    assert [event["level"] for event in sink.of("log")] == ["warn"]
    assert [turn["isError"] for turn in sink.of("turn")] == [True, False]


async def test_usage_is_summed_over_every_turn() -> None:
    fake = (
        FakeModel()
        .reply("thinking aloud", usage=Usage(input=100, output=10))
        .reply(
            tool_calls=[finish({"name": "x", "age": "bad"}, "a")], usage=Usage(input=7, output=3)
        )
        .reply(tool_calls=[finish({"name": "x", "age": 2}, "b")], usage=Usage(input=1, output=1))
    )
    harness, sink = make_harness(fake)

    response = await (await harness.session()).prompt("Who?", result=Person)

    assert (response.usage.input, response.usage.output) == (108, 14)
    [operation] = sink.of("operation")
    assert operation["usage"]["totalTokens"] == 122


async def test_non_object_results_are_wrapped() -> None:
    fake = FakeModel().reply(tool_calls=[finish({"result": ["a", "b"]}, "t")])
    harness, _sink = make_harness(fake)

    response = await (await harness.session()).prompt("List.", result=list[str])

    assert response.data == ["a", "b"]
    [spec] = [tool for tool in fake.requests[0].tools if tool.name == "finish"]
    assert spec.parameters["required"] == ["result"]
    assert spec.parameters["properties"]["result"]["type"] == "array"


async def test_first_valid_finish_wins() -> None:
    fake = FakeModel().reply(
        tool_calls=[finish({"name": "A", "age": 1}, "one"), finish({"name": "B", "age": 2}, "two")]
    )
    harness, _sink = make_harness(fake)

    response = await (await harness.session()).prompt("Who?", result=Person)

    assert response.data.name == "A"


async def test_reserved_tool_names_conflict() -> None:
    class Empty(BaseModel):
        pass

    async def run(_args: Empty) -> str:
        return ""

    tool = define_tool(name="finish", description="mine", input=Empty, run=run)
    with pytest.raises(ToolNameConflictError) as caught:
        AgentConfig(model="fake/echo", tools=[tool])
    assert caught.value.type == "tool_name_conflict"
    with pytest.raises(ToolNameConflictError):
        define_agent_profile(name="helper", tools=[tool])
    assert not issubclass(ToolNameConflictError, DefinitionError)
