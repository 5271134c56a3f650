"""Actions offered to the model as tools: validated arguments, a scope of their own, the
action's output as the tool's result."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typing_extensions
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    DefinitionError,
    define_action,
    define_agent,
    define_agent_profile,
    define_workflow,
)
from flue_actors.errors import ToolNameConflictError
from flue_actors.testing import FakeModel, FakeToolCall, FlueTestKit, RecordingSink

from .support import make_harness


class Greeting(BaseModel):
    name: str


class Greeted(BaseModel):
    text: str
    scope: str


@define_action(name="greet", description="Greet someone by name.")
async def greet(ctx: ActionContext[Greeting]) -> Greeted:
    await ctx.harness.fs.write_file("greeted.txt", ctx.input.name)
    session = await ctx.harness.session()
    return Greeted(text=f"Hello, {ctx.input.name}!", scope=ctx.harness.name + "|" + session.name)


AGENT = define_agent(model="fake/echo", actions=[greet])


@define_workflow(agent=AGENT)
async def host(ctx: ActionContext[None]) -> dict[str, str]:
    session = await ctx.harness.session()
    response = await session.prompt("Greet Ada.")
    return {"text": response.text, "file": await ctx.harness.fs.read_file("greeted.txt")}


def test_the_model_calls_an_action_as_a_tool() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("greet", {"name": "Ada"}, "call_greet")]).reply("done")
    kit = FlueTestKit(fake)
    try:
        run = kit.run(host)
    finally:
        kit.close()

    assert run.status == "completed", run.error
    # The action ran on the run's sandbox: the workflow reads the file it wrote.
    assert run.result == {"text": "done", "file": "Ada"}
    [tool] = run.events_of("tool")
    assert (tool["toolName"], tool["toolCallId"], tool["isError"]) == ("greet", "call_greet", False)
    output = json.loads(tool["result"]["content"][0]["text"])
    assert output["text"] == "Hello, Ada!"
    scope, session = output["scope"].split("|")
    assert scope.startswith("action:")  # its own scope, as in Flue
    assert session == "default"
    first = fake.requests[0]
    greet_spec = next(spec for spec in first.tools if spec.name == "greet")
    assert greet_spec.description == "Greet someone by name."
    assert greet_spec.parameters["properties"].keys() == {"name"}


def test_invalid_arguments_go_back_to_the_model() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("greet", {"nom": "Ada"}, "call_bad")])
    fake.reply(tool_calls=[FakeToolCall("greet", {"name": "Ada"}, "call_good")]).reply("done")
    kit = FlueTestKit(fake)
    try:
        run = kit.run(host)
    finally:
        kit.close()

    assert run.status == "completed", run.error
    bad, good = run.events_of("tool")
    assert bad["isError"] is True
    assert "name" in bad["result"]["content"][0]["text"]
    assert good["isError"] is False


def test_action_names_cannot_collide_with_tools() -> None:
    with pytest.raises(ToolNameConflictError):
        define_agent(
            model="fake/echo", actions=[greet.__class__(**{**greet.__dict__, "name": "read"})]
        )


def test_only_actions_are_accepted() -> None:
    with pytest.raises(DefinitionError, match="define_action"):
        define_agent(model="fake/echo", actions=["greet"])


@define_action(name="descend", description="Go one level deeper.")
async def descend(ctx: ActionContext[None]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt("deeper")).text


def _refusals(sink: RecordingSink) -> list[dict[str, Any]]:
    return [event for event in sink.of("tool") if event["isError"]]


async def test_actions_count_toward_the_delegation_depth() -> None:
    # Each level calls the action again; the fifth call is refused, as a fifth task would be.
    fake = FakeModel()
    for level in range(5):
        fake.reply(tool_calls=[FakeToolCall("descend", {}, f"d{level}")])
    fake.respond_with(lambda _request: "unwound")
    harness, sink = make_harness(fake, actions=[descend])

    response = await (await harness.session()).prompt("go")

    assert response.text == "unwound"
    scopes = {event["harness"] for event in sink.of("operation_start")}
    assert len(scopes) == 5  # the run's harness and four nested action scopes
    assert max(name.count("action:") for name in scopes) == 1  # each scope named once
    [refused] = _refusals(sink)
    assert refused["toolName"] == "descend"
    assert "DelegationDepthExceededError" in refused["result"]["content"][0]["text"]


async def test_tasks_and_actions_share_one_depth() -> None:
    # task, action, task, action: the fifth delegation, a task, is refused.
    fake = FakeModel()
    for level, tool in enumerate(["task", "descend", "task", "descend", "task"]):
        arguments = {"prompt": "deeper"} if tool == "task" else {}
        fake.reply(tool_calls=[FakeToolCall(tool, arguments, f"c{level}")])
    fake.respond_with(lambda _request: "unwound")
    harness, sink = make_harness(
        fake, actions=[descend], subagents=[define_agent_profile(name="unused")]
    )

    await (await harness.session()).prompt("go")

    assert len(sink.of("task_start")) == 2
    assert len({event["harness"] for event in sink.of("operation_start")}) == 3
    [refused] = _refusals(sink)
    assert refused["toolName"] == "task"
    assert "DelegationDepthExceededError" in refused["result"]["content"][0]["text"]


class Counted(typing_extensions.TypedDict):
    count: int


@define_action(name="count", description="Count.")
async def count(ctx: ActionContext[Counted]) -> int:
    return ctx.input["count"]


def test_an_action_the_model_cannot_call_is_refused_when_defined() -> None:
    # Its arguments are validated with the input model: a TypedDict input cannot be offered,
    # which the agent (or profile) says when defined rather than when a run starts.
    with pytest.raises(DefinitionError, match=r'action "count" is offered to the model'):
        define_agent(model="fake/echo", actions=[count])
    with pytest.raises(DefinitionError, match=r'action "count" is offered to the model'):
        define_agent_profile(name="helper", actions=[count])
    with pytest.raises(DefinitionError, match="define_action"):
        define_agent_profile(name="helper", actions=["greet"])  # type: ignore[list-item]
