"""Tasks (reference 1.3, 1.5, 1.12): detached child sessions, their events and lineage,
profile inheritance, the model's ``task`` tool, unknown subagents and the depth limit."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flue_actors import (
    DelegationDepthExceededError,
    Session,
    SessionNotFoundError,
    SubagentNotDeclaredError,
    define_agent_profile,
    define_skill,
)
from flue_actors._definitions import BUILTIN_TOOL_NAMES
from flue_actors._ids import SequentialIds, lane_ids
from flue_actors.testing import FakeModel, FakeToolCall

from .support import make_harness

RESEARCHER = define_agent_profile(
    name="researcher",
    instructions="You research things.",
    skills=[define_skill(name="cite", description="Cite.", instructions="Cite sources.")],
)


async def test_task_runs_in_a_detached_child_session() -> None:
    fake = FakeModel().reply("child answer")
    harness, sink = make_harness(fake, instructions="Parent.", subagents=[RESEARCHER])
    session = await harness.session("main")

    response = await session.task("Find X.", agent="researcher")

    assert response.text == "child answer"
    # The session's first id, from its own sequence (each session draws from its own).
    task_1 = lane_ids(SequentialIds(), f"{harness.name}/main").uuid()
    child_name = f"task:main:{task_1}"
    [start] = sink.of("task_start")
    assert start["taskId"] == task_1
    assert start["prompt"] == "Find X."
    assert start["agent"] == "researcher"
    assert start["parentSession"] == "main"
    assert start["session"] == child_name
    assert start["conversationId"] != session.conversation_id
    [ended] = sink.of("task")
    assert ended["isError"] is False
    assert ended["result"] == "child answer"
    assert ended["agent"] == "researcher"
    assert ended["session"] == child_name
    assert "durationMs" in ended
    # The child's own events carry its name, parent and task id.
    [turn] = sink.of("turn")
    assert (turn["session"], turn["parentSession"], turn["taskId"]) == (
        child_name,
        "main",
        task_1,
    )
    assert turn["conversationId"] == start["conversationId"]
    [operation] = sink.of("operation")
    assert (operation["operationKind"], operation["session"]) == ("task", "main")
    assert sink.types.index("task_start") < sink.types.index("turn") < sink.types.index("task")
    # Detached: the harness does not list it; the parent's conversation is untouched.
    with pytest.raises(SessionNotFoundError):
        await harness.sessions.get(child_name)
    assert session.messages == []


async def test_profile_inheritance() -> None:
    fake = FakeModel().reply("ok").reply("ok")
    harness, _sink = make_harness(
        fake, instructions="Parent.", thinking_level="low", subagents=[RESEARCHER]
    )
    session = await harness.session()

    await session.task("a", agent="researcher")
    await session.task("b")

    profiled, reused = fake.requests
    # Instructions, skills, subagents from the profile only; model and level from the parent.
    # (The profile's skill is listed in the prompt's skill catalog, as Flue lists it.)
    assert profiled.system_prompt is not None
    instructions, catalog = profiled.system_prompt.split("\n\n", 1)
    assert instructions == "You research things."
    assert catalog.startswith("## Available Skills")
    assert catalog.endswith("\n- **cite** — Cite.")
    # The sandbox's workspace tools come with every session, a task's child included.
    assert {tool.name for tool in profiled.tools} == set(BUILTIN_TOOL_NAMES) | {
        "activate_skill",
        "read_skill_resource",
    }
    assert (profiled.model, profiled.thinking_level) == ("echo", "low")
    # Without an agent the parent's whole config is reused.
    assert reused.system_prompt == "Parent."
    assert {tool.name for tool in reused.tools} == set(BUILTIN_TOOL_NAMES) | {"task"}


async def test_task_model_overrides() -> None:
    profile = define_agent_profile(name="fast", model="fake/fast")
    fake = FakeModel().reply("1").reply("2")
    harness, _sink = make_harness(fake, subagents=[profile])
    session = await harness.session()

    await session.task("a", agent="fast")
    await session.task("b", agent="fast", model="fake/slow", thinking_level="high")

    assert [(r.model, r.thinking_level) for r in fake.requests] == [
        ("fast", None),
        ("slow", "high"),
    ]


async def test_task_with_a_structured_result() -> None:
    class Count(BaseModel):
        n: int

    fake = FakeModel().reply(tool_calls=[FakeToolCall("finish", {"n": 3}, "f")])
    harness, sink = make_harness(fake)

    response = await (await harness.session()).task("Count.", result=Count)

    assert response.data == Count(n=3)
    assert sink.of("task")[0]["result"] == '{"n":3}'


async def test_unknown_subagent() -> None:
    harness, sink = make_harness(FakeModel(), subagents=[RESEARCHER])

    with pytest.raises(SubagentNotDeclaredError) as caught:
        await (await harness.session()).task("x", agent="writer")

    assert caught.value.type == "subagent_not_declared"
    assert sink.events == []


async def test_delegation_depth_limit() -> None:
    # Each level delegates through the model's task tool; the fifth level may not.
    fake = FakeModel()
    for level in range(5):
        fake.reply(tool_calls=[FakeToolCall("task", {"prompt": "deeper"}, f"t{level}")])
    fake.respond_with(lambda _request: "unwound")
    harness, sink = make_harness(fake, subagents=[define_agent_profile(name="unused")])

    await (await harness.session()).prompt("go")

    assert len(sink.of("task_start")) == 4
    depth_errors = [event for event in sink.of("tool") if event["isError"]]
    [error] = depth_errors
    assert "DelegationDepthExceededError" in error["result"]["content"][0]["text"]
    assert error["taskId"] is not None
    assert error["session"].count("task:") == 4


async def test_depth_limit_on_the_session_api() -> None:
    harness, _sink = make_harness(FakeModel())
    session = await harness.session()
    state = session.state
    for _ in range(4):
        scope = state.scope.delegate(None, model=None, thinking_level=None, harness=harness)
        state = state.spawn(f"task:{state.name}:x", scope, "x")
    services = state.services
    child = Session(harness, state.name, conversation_id=state.conversation_id,
                    sink=services.sink, clock=services.clock, ids=services.ids,
                    tools=state.scope.tools, scope=state.scope, lineage=state.lineage)  # fmt: skip
    with pytest.raises(DelegationDepthExceededError) as caught:
        child.task("too deep")
    assert caught.value.type == "delegation_depth_exceeded"


async def test_the_model_task_tool_returns_the_child_text() -> None:
    fake = (
        FakeModel()
        .reply(tool_calls=[FakeToolCall("task", {"prompt": "sub", "agent": "researcher"}, "t1")])
        .reply("from child")
        .reply("parent done")
    )
    harness, sink = make_harness(fake, subagents=[RESEARCHER])

    response = await (await harness.session()).prompt("delegate")

    assert response.text == "parent done"
    tool = next(event for event in sink.of("tool") if event["toolName"] == "task")
    assert tool["result"]["content"][0]["text"] == "from child"
    assert sink.of("task_start")[0]["agent"] == "researcher"
    assert sink.of("task_start")[0]["operationId"] == sink.of("operation_start")[0]["operationId"]


async def test_a_failing_child_reports_a_task_error() -> None:
    fake = FakeModel().fail(status=400)
    harness, sink = make_harness(fake)

    with pytest.raises(Exception, match="failed"):
        await (await harness.session()).task("x")

    [ended] = sink.of("task")
    assert ended["isError"] is True
    assert "Fake API error 400" in ended["result"]
