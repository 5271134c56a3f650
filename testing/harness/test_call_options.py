"""Per-call options (reference 1.5): ``tools=``, ``signal=``, ``task(cwd=)``; the agent's
``profile=`` baseline and what a subagent profile carries (1.3)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from flue_actors import (
    AbortError,
    ActionContext,
    AgentConfig,
    CompactionConfig,
    ToolNameConflictError,
    define_action,
    define_agent,
    define_agent_profile,
    define_skill,
    define_tool,
)
from flue_actors._definitions import BUILTIN_TOOL_NAMES
from flue_actors.testing import FakeModel, FakeToolCall

from .support import make_harness


class Nothing(BaseModel):
    pass


async def _stamp(_args: Nothing) -> str:
    return "stamped"


STAMP = define_tool(name="stamp", description="Stamp.", input=Nothing, run=_stamp)


@define_action(name="tally", description="Count.")
async def tally(ctx: ActionContext[None]) -> int:
    return 3


# --- tools= ------------------------------------------------------------------------------------


async def test_call_tools_are_offered_for_that_call_only() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("stamp", {}, "s1")]).reply("done").reply("again")
    harness, sink = make_harness(fake)
    session = await harness.session()

    assert (await session.prompt("go", tools=[STAMP])).text == "done"
    await session.prompt("next")

    first, _after_tool, second = fake.requests
    assert [tool.name for tool in first.tools] == [*BUILTIN_TOOL_NAMES, "stamp"]
    assert [tool.name for tool in second.tools] == list(BUILTIN_TOOL_NAMES)
    [call] = sink.of("tool")
    assert (call["toolName"], call["isError"]) == ("stamp", False)
    assert call["result"]["content"][0]["text"] == "stamped"


async def test_a_call_tool_named_like_the_agents_fails_the_operation() -> None:
    harness, sink = make_harness(FakeModel(), tools=[STAMP])
    session = await harness.session()

    with pytest.raises(ToolNameConflictError) as caught:
        await session.prompt("go", tools=[STAMP])
    assert caught.value.type == "tool_name_conflict"
    [operation] = sink.of("operation")
    assert operation["error"]["type"] == "tool_name_conflict"
    with pytest.raises(ToolNameConflictError):
        await session.prompt(
            "go", tools=[define_tool(name="read", description="r", input=Nothing, run=_stamp)]
        )


async def test_task_tools_go_to_the_child() -> None:
    fake = FakeModel().reply("child")
    harness, _sink = make_harness(fake)
    session = await harness.session()

    await session.task("work", tools=[STAMP])

    [child] = fake.requests
    assert "stamp" in {tool.name for tool in child.tools}


async def test_the_model_task_tool_passes_call_tools_to_agentless_tasks_only() -> None:
    fake = FakeModel()
    fake.reply(
        tool_calls=[
            FakeToolCall("task", {"prompt": "plain"}, "t1"),
            FakeToolCall("task", {"prompt": "profiled", "agent": "helper"}, "t2"),
        ]
    )
    fake.respond_with(lambda _request: "ok")
    harness, _sink = make_harness(fake, subagents=[define_agent_profile(name="helper")])
    session = await harness.session()

    await session.prompt("go", tools=[STAMP])

    by_prompt = {r.messages[0]["content"][0]["text"]: r for r in fake.requests[1:3]}
    assert "stamp" in {tool.name for tool in by_prompt["plain"].tools}
    assert "stamp" not in {tool.name for tool in by_prompt["profiled"].tools}


# --- signal= -----------------------------------------------------------------------------------


class Stop(asyncio.Event):
    reason = "The caller stopped."


async def test_setting_the_signal_aborts_the_call() -> None:
    signal = Stop()
    never = asyncio.Event()

    async def block(_args: Nothing) -> str:
        signal.set()  # the caller gives up while the tool runs
        await never.wait()
        return "unreachable"

    blocker = define_tool(name="block", description="Block.", input=Nothing, run=block)
    fake = FakeModel().reply(tool_calls=[FakeToolCall("block", {}, "b1")])
    harness, sink = make_harness(fake, tools=[blocker])
    session = await harness.session()

    with pytest.raises(AbortError, match=r"The caller stopped\."):
        await session.prompt("go", signal=signal)
    [operation] = sink.of("operation")
    assert operation["isError"] is True
    assert operation["error"]["name"] == "AbortError"
    # The session is free again.
    fake.reply("fine")
    assert (await session.prompt("again")).text == "fine"


async def test_a_signal_aborts_a_task_and_its_child() -> None:
    signal = asyncio.Event()
    never = asyncio.Event()

    async def block(_args: Nothing) -> str:
        signal.set()
        await never.wait()
        return "unreachable"

    blocker = define_tool(name="block", description="Block.", input=Nothing, run=block)
    fake = FakeModel().reply(tool_calls=[FakeToolCall("block", {}, "b1")])
    harness, sink = make_harness(fake, tools=[blocker])
    session = await harness.session()

    with pytest.raises(AbortError):
        await session.task("work", signal=signal)
    [task] = sink.of("task")
    assert task["isError"] is True
    [operation] = sink.of("operation")
    assert operation["operationKind"] == "task"
    assert operation["error"]["name"] == "AbortError"


async def test_skill_call_tools() -> None:
    fake = FakeModel().reply("ok")
    skill = define_skill(name="s", description="d", instructions="Use stamp.")
    harness, _sink = make_harness(fake, skills=[skill])
    session = await harness.session()

    await session.skill("s", tools=[STAMP])

    assert "stamp" in {tool.name for tool in fake.requests[0].tools}


async def test_a_signal_already_set_aborts_before_any_model_call() -> None:
    signal = asyncio.Event()
    signal.set()
    fake = FakeModel()
    harness, sink = make_harness(fake)
    session = await harness.session()

    with pytest.raises(AbortError):
        await session.prompt("go", signal=signal)
    with pytest.raises(AbortError):
        await harness.shell("echo hi", signal=signal)
    assert fake.requests == []
    assert [event["type"] for event in sink.events if event["type"].startswith("operation")] == [
        "operation_start",
        "operation",
    ]


async def test_a_signal_set_after_the_call_ended_changes_nothing() -> None:
    signal = asyncio.Event()
    harness, _sink = make_harness(FakeModel().reply("done"))
    session = await harness.session()

    handle = session.prompt("go", signal=signal)
    assert (await handle).text == "done"
    signal.set()
    await asyncio.sleep(0)
    assert not handle.aborted


# --- task(cwd=) --------------------------------------------------------------------------------


async def test_a_task_works_in_its_cwd() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("write", {"path": "notes.md", "content": "hi"}, "w1")])
    fake.reply(tool_calls=[FakeToolCall("bash", {"command": "pwd"}, "p1")])
    fake.reply("written")
    harness, sink = make_harness(fake)
    session = await harness.session()

    await session.task("write notes", cwd="sub/dir")

    assert await harness.fs.read_file("/workspace/sub/dir/notes.md") == "hi"
    [start] = sink.of("task_start")
    assert start["cwd"] == "sub/dir"
    pwd = [event for event in sink.of("tool") if event["toolName"] == "bash"]
    assert pwd[0]["result"]["content"][0]["text"].strip() == "/workspace/sub/dir"


async def test_nested_task_cwd_is_relative_to_the_parent_task() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("task", {"prompt": "inner", "cwd": "b"}, "t1")])
    fake.reply(tool_calls=[FakeToolCall("write", {"path": "x.txt", "content": "x"}, "w1")])
    fake.respond_with(lambda _request: "done")
    harness, _sink = make_harness(fake, subagents=[define_agent_profile(name="unused")])
    session = await harness.session()

    await session.task("outer", cwd="/a")

    assert await harness.fs.read_file("/a/b/x.txt") == "x"


async def test_a_profile_cwd_is_the_tasks_default() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("write", {"path": "f.txt", "content": "p"}, "w1")])
    fake.reply("ok")
    harness, _sink = make_harness(fake, subagents=[define_agent_profile(name="w", cwd="/pw")])
    session = await harness.session()

    await session.task("go", agent="w")

    assert await harness.fs.read_file("/pw/f.txt") == "p"


# --- profiles ----------------------------------------------------------------------------------


BASE = define_agent_profile(
    name="base",
    model="fake/base",
    instructions="Base.",
    description="A base.",
    thinking_level="high",
    tools=[STAMP],
    skills=[define_skill(name="s1", description="d", instructions="i")],
    cwd="/base",
)


def test_an_agent_profile_is_the_baseline_of_its_config() -> None:
    other = define_tool(name="other", description="o", input=Nothing, run=_stamp)
    config = AgentConfig(profile=BASE, instructions="Mine.", tools=[other], actions=[tally])
    assert config.model == "fake/base"  # from the profile
    assert config.instructions == "Mine."  # given here: wins
    assert (config.description, config.thinking_level, config.cwd) == ("A base.", "high", "/base")
    assert [tool.name for tool in config.tools] == ["stamp", "other"]  # profile's first
    assert [skill.name for skill in config.skills] == ["s1"]
    assert [action.name for action in config.actions] == ["tally"]
    assert AgentConfig(profile=BASE, model="fake/mine", thinking_level="low").model == "fake/mine"
    # compaction follows the same rule: the profile's unless the agent sets its own.
    terse = define_agent_profile(name="terse", model="fake/t", compaction={"reserve_tokens": 10})
    assert AgentConfig(profile=terse).compaction == CompactionConfig(reserve_tokens=10)
    assert AgentConfig(profile=terse, compaction=False).compaction is False


def test_profile_and_config_tools_share_one_name_rule() -> None:
    with pytest.raises(ToolNameConflictError):
        define_agent(profile=BASE, tools=[STAMP])
    with pytest.raises(ToolNameConflictError):
        define_agent_profile(name="p", tools=[STAMP], actions=[tally, tally])


def test_profile_fields_are_validated() -> None:
    from flue_actors import DefinitionError

    with pytest.raises(DefinitionError, match="thinking_level"):
        define_agent_profile(name="p", thinking_level="max")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="define_action"):
        define_agent_profile(name="p", actions=["tally"])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="profile"):
        define_agent(model="fake/echo", profile="base")
    with pytest.raises(DefinitionError, match="requires a model"):
        define_agent(profile=define_agent_profile(name="nomodel"))


async def test_an_agent_built_on_a_profile_runs_with_the_merged_config() -> None:
    fake = FakeModel().reply("ok")
    harness, _sink = make_harness(fake, model=None, profile=BASE)
    await (await harness.session()).prompt("go")

    [request] = fake.requests
    assert (request.model, request.thinking_level) == ("base", "high")
    # The instructions, then the catalog of the profile's skill.
    assert request.system_prompt is not None
    assert request.system_prompt.startswith("Base.\n\n## Available Skills\n\n")
    assert request.system_prompt.endswith("\n- **s1** — d")
    assert "stamp" in {tool.name for tool in request.tools}


async def test_a_subagent_profile_brings_its_actions_and_thinking_level() -> None:
    helper = define_agent_profile(name="helper", thinking_level="minimal", actions=[tally])
    fake = FakeModel()
    fake.reply(tool_calls=[FakeToolCall("tally", {}, "a1")]).reply("counted")
    harness, sink = make_harness(fake, thinking_level="high", subagents=[helper])
    session = await harness.session()

    await session.task("count", agent="helper")

    first = fake.requests[0]
    assert first.thinking_level == "minimal"
    assert "tally" in {tool.name for tool in first.tools}
    [call] = sink.of("tool")
    assert (call["toolName"], call["isError"]) == ("tally", False)
    assert call["result"]["content"][0]["text"] == "3"
