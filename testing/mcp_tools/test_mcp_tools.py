"""MCP tools (issue 15 item 4): an agent's ``mcp_tools(...)`` servers, reached through the
official SDK over stdio (a real server process) and streamable HTTP (a real server under
uvicorn on 127.0.0.1), their tools called by the fake model and recorded like any tool call."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
import uvicorn
from harness.support import make_harness
from pydantic import BaseModel

from flue_actors import (
    AbortError,
    ActionContext,
    DefinitionError,
    MCPConnectionError,
    ToolNameConflictError,
    define_agent,
    define_agent_profile,
    define_tool,
    define_workflow,
    mcp_tools,
)
from flue_actors.testing import FakeModel, FakeToolCall, FlueTestKit

from .notes_server import http_app

SERVER_SCRIPT = str(Path(__file__).with_name("notes_server.py"))

pytestmark = pytest.mark.timeout(60)


def notes(**options: Any) -> Any:
    return mcp_tools(name="notes", command=sys.executable, args=[SERVER_SCRIPT], **options)


def tool_text(event: dict[str, Any]) -> str:
    return str(event["result"]["content"][0]["text"])


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- stdio ------------------------------------------------------------------------------------


async def test_stdio_tools_are_offered_called_and_recorded() -> None:
    fake = (
        FakeModel()
        .reply(tool_calls=[FakeToolCall("mcp__notes__add", {"a": 2, "b": 3}, "c1")])
        .reply("five")
    )
    harness, sink = make_harness(fake, tools=[notes()])
    try:
        response = await (await harness.session()).prompt("add 2 and 3")
    finally:
        await harness.close()

    assert response.text == "five"
    offered = {spec.name: spec for spec in fake.requests[0].tools}
    add = offered["mcp__notes__add"]
    assert add.description == 'MCP tool "add" from server "notes". Add two integers.'
    assert add.parameters["properties"].keys() == {"a", "b"}
    assert add.parameters["required"] == ["a", "b"]
    assert {"mcp__notes__echo", "mcp__notes__broken", "mcp__notes__pid"} <= offered.keys()
    [start] = sink.of("tool_start")
    [done] = sink.of("tool")
    assert (start["toolName"], start["toolCallId"]) == ("mcp__notes__add", "c1")
    assert (done["toolName"], done["isError"]) == ("mcp__notes__add", False)
    assert tool_text(done) == 'Structured content:\n{\n  "result": 5\n}\n\n5'
    # The model's next request carries the result, as for any tool.
    result = fake.requests[1].messages[-1]
    assert (result["role"], result["toolName"], result["isError"]) == (
        "toolResult",
        "mcp__notes__add",
        False,
    )


async def test_a_failing_or_mistyped_call_is_an_error_result_the_model_reads() -> None:
    fake = (
        FakeModel()
        .reply(
            tool_calls=[
                FakeToolCall("mcp__notes__broken", {"reason": "testing"}, "c1"),
                FakeToolCall("mcp__notes__add", {"a": "many"}, "c2"),
                # A model can send any JSON as arguments.
                FakeToolCall("mcp__notes__add", cast(dict[str, Any], ["a", "list"]), "c3"),
            ]
        )
        .reply("understood")
    )
    harness, sink = make_harness(fake, tools=[notes()])
    try:
        response = await (await harness.session()).prompt("try")
    finally:
        await harness.close()

    assert response.text == "understood"
    broken, mistyped, not_object = sink.of("tool")
    assert broken["isError"]
    assert tool_text(broken) == "Error executing tool broken: broken on purpose: testing"
    assert mistyped["isError"]
    assert "validation error" in tool_text(mistyped)
    assert not_object["isError"]
    assert (
        tool_text(not_object) == "Invalid arguments for tool mcp__notes__add: expected an object."
    )


async def test_one_connection_per_run_closed_when_the_run_ends() -> None:
    pid_call = FakeToolCall("mcp__notes__pid", {}, "p")
    fake = FakeModel().reply(tool_calls=[pid_call]).reply("a").reply(tool_calls=[pid_call])
    fake.reply("b")
    harness, sink = make_harness(fake, tools=[notes()])
    await (await harness.session("one")).prompt("pid?")
    await (await harness.session("two")).prompt("pid?")
    # The text is the structured content, then the plain text: the pid, on the last line.
    first, second = (int(tool_text(event).split()[-1]) for event in sink.of("tool"))

    assert first == second  # both sessions used the run's one server process
    assert process_alive(first)
    await harness.close()
    assert not process_alive(first)  # the run's end stopped the process it started


async def test_allowlist_limits_the_tools_and_an_unlisted_name_fails_the_connection() -> None:
    fake = FakeModel().reply("ok")
    harness, _sink = make_harness(fake, tools=[notes(tools=["echo"])])
    try:
        await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    names = {spec.name for spec in fake.requests[0].tools}
    assert {name for name in names if name.startswith("mcp__")} == {"mcp__notes__echo"}

    harness, sink = make_harness(FakeModel(), tools=[notes(tools=["echo", "nope"])])
    try:
        with pytest.raises(MCPConnectionError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.type == "mcp_connection_failed"
    assert caught.value.message == (
        'MCP server "notes" (stdio) could not be connected: '
        'the server does not list the tools "nope"'
    )
    [operation] = sink.of("operation")
    assert operation["isError"]
    assert operation["error"]["type"] == "mcp_connection_failed"


async def test_a_call_past_its_timeout_is_an_error_result() -> None:
    fake = (
        FakeModel().reply(tool_calls=[FakeToolCall("mcp__notes__hang", {}, "h")]).reply("gave up")
    )
    harness, sink = make_harness(fake, tools=[notes(timeout=0.2)])
    try:
        response = await (await harness.session()).prompt("wait")
    finally:
        await harness.close()
    assert response.text == "gave up"
    [done] = sink.of("tool")
    assert done["isError"]
    assert "timed out" in tool_text(done).lower()


async def test_an_abort_during_a_call_ends_the_operation_and_the_server() -> None:
    pid_call = FakeToolCall("mcp__notes__pid", {}, "p")
    fake = FakeModel().reply(tool_calls=[pid_call]).reply("pid known")
    fake.reply(tool_calls=[FakeToolCall("mcp__notes__hang", {}, "h")])
    harness, sink = make_harness(fake, tools=[notes()])
    session = await harness.session()
    await session.prompt("pid?")
    pid = int(tool_text(sink.of("tool")[0]).split()[-1])
    handle = session.prompt("wait")
    deadline = time.monotonic() + 30
    while len(sink.of("tool_start")) < 2:  # the hanging call has been sent to the server
        assert time.monotonic() < deadline, "the hanging tool was never called"
        await asyncio.sleep(0.01)
    handle.abort("enough")
    with pytest.raises(AbortError):
        await handle
    await harness.close()
    [_, operation] = sink.of("operation")
    assert operation["isError"]
    assert not process_alive(pid)


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("/nonexistent/flue-mcp-server", []),
        (sys.executable, ["-c", "import sys; sys.exit(3)"]),
    ],
    ids=["missing-command", "exits-at-once"],
)
async def test_a_server_that_cannot_start_is_a_typed_error(command: str, args: list[str]) -> None:
    server = mcp_tools(name="gone", command=command, args=args)
    harness, sink = make_harness(FakeModel(), tools=[server])
    try:
        with pytest.raises(MCPConnectionError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.meta == {"server": "gone", "transport": "stdio", "target": command}
    assert caught.value.message.startswith('MCP server "gone" (stdio) could not be connected: ')
    assert sink.of("turn_start") == []  # no model call was made without the agent's tools


# --- names ------------------------------------------------------------------------------------


class Nothing(BaseModel):
    pass


async def _nothing(_args: Nothing) -> str:
    return ""


async def test_a_calls_tools_are_offered_beside_the_mcp_tools() -> None:
    stamp = define_tool(name="stamp", description="Stamp.", input=Nothing, run=_nothing)
    fake = FakeModel().reply("ok")
    harness, _sink = make_harness(fake, tools=[notes(tools=["echo"])])
    try:
        await (await harness.session()).prompt("hi", tools=[stamp])
    finally:
        await harness.close()
    names = {spec.name for spec in fake.requests[0].tools}
    assert {"stamp", "mcp__notes__echo"} <= names


async def test_a_local_tool_with_an_mcp_tool_name_is_a_conflict() -> None:
    clash = define_tool(name="mcp__notes__add", description="Mine.", input=Nothing, run=_nothing)
    harness, _sink = make_harness(FakeModel(), tools=[clash, notes()])
    try:
        with pytest.raises(ToolNameConflictError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.type == "tool_name_conflict"
    assert caught.value.message == 'Tool name "mcp__notes__add" is used by more than one tool.'


async def test_two_server_tools_named_alike_are_a_conflict() -> None:
    harness, _sink = make_harness(FakeModel(), tools=[notes(env={"NOTES_CLASH": "1"})])
    try:
        with pytest.raises(ToolNameConflictError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.message == (
        'Tool name "mcp__notes__echo" conflicts with another tool of "notes".'
    )


def test_two_servers_with_one_prefix_are_a_conflict_when_defined() -> None:
    other = mcp_tools(name="notes!", url="http://127.0.0.1:1/mcp")
    with pytest.raises(ToolNameConflictError):
        define_agent(model="fake/echo", tools=[notes(), other])
    with pytest.raises(ToolNameConflictError):
        define_agent_profile(name="helper", tools=[notes(), other])


def test_a_server_may_share_a_name_with_a_framework_tool() -> None:
    # Its tools are mcp__task__*, so the server's own name collides with nothing.
    define_agent(model="fake/echo", tools=[mcp_tools(name="task", command="server")])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs exactly one of command="),
        ({"command": "a", "url": "http://h/mcp"}, "needs exactly one of command="),
        ({"url": "ftp://h/mcp"}, "http:// or https:// URL"),
        ({"command": "a", "args": "b"}, "sequence of strings"),
        ({"url": "http://h/mcp", "args": ["x"]}, "apply to command= only"),
        ({"command": "a", "headers": {"k": "v"}}, "apply to url= only"),
        ({"command": "a", "env": {"K": 1}}, "map strings to strings"),
        ({"command": "a", "tools": "add"}, "sequence of tool names"),
        ({"command": "a", "timeout": 0}, "positive number of seconds"),
    ],
)
def test_bad_definitions_fail_when_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        mcp_tools(name="s", **options)


# --- subagents and workflows ------------------------------------------------------------------


async def test_a_subagent_profile_shares_the_runs_connection() -> None:
    helper = define_agent_profile(name="helper", tools=[server := notes()])
    pid_call = FakeToolCall("mcp__notes__pid", {}, "p")
    fake = (
        FakeModel()
        .reply(tool_calls=[pid_call])
        .reply("root")
        .reply(tool_calls=[pid_call])
        .reply("child")
    )
    # The root agent and its subagent name the same server definition: one process.
    harness, sink = make_harness(fake, tools=[server], subagents=[helper])
    try:
        session = await harness.session()
        await session.prompt("pid?")
        await session.task("pid?", agent="helper")
    finally:
        await harness.close()
    root_pid, child_pid = (tool_text(event) for event in sink.of("tool"))
    assert root_pid == child_pid
    child_tools = {spec.name for spec in fake.requests[2].tools}
    assert "mcp__notes__pid" in child_tools


class Question(BaseModel):
    text: str


async def ask(ctx: ActionContext[Question]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt(ctx.input.text)).text


async def test_a_workflow_run_records_mcp_tool_calls_in_its_log() -> None:
    workflow = define_workflow(agent=define_agent(model="fake/echo", tools=[notes()]), run=ask)
    fake = (
        FakeModel()
        .reply(tool_calls=[FakeToolCall("mcp__notes__echo", {"text": "hi"}, "e1")])
        .reply("done")
    )
    kit = FlueTestKit(fake)
    try:
        run = await kit.run_async(workflow, {"text": "echo hi"})
    finally:
        await kit.aclose()
    assert run.status == "completed", run.error
    assert run.result == "done"
    [done] = run.events_of("tool")
    assert (done["toolName"], done["isError"]) == ("mcp__notes__echo", False)
    assert tool_text(done).endswith("echo: hi")


async def test_a_run_whose_server_cannot_start_fails_with_the_typed_error() -> None:
    gone = mcp_tools(name="gone", command="/nonexistent/server")
    workflow = define_workflow(agent=define_agent(model="fake/echo", tools=[gone]), run=ask)
    kit = FlueTestKit(FakeModel())
    try:
        run = await kit.run_async(workflow, {"text": "hi"})
    finally:
        await kit.aclose()
    assert run.status == "errored"
    assert run.error is not None
    assert run.error["type"] == "mcp_connection_failed"


# --- streamable HTTP --------------------------------------------------------------------------

TOKEN = "test-token"


@pytest_asyncio.fixture
async def http_server() -> AsyncIterator[str]:
    """The notes server's streamable-HTTP app under uvicorn on 127.0.0.1 (a free port), as a
    task of the test's loop; its URL requires ``Authorization: Bearer test-token``."""
    config = uvicorn.Config(
        http_app(token=TOKEN), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn stopped before it started")
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_http_tools_with_headers(http_server: str) -> None:
    server = mcp_tools(name="remote", url=http_server, headers={"Authorization": f"Bearer {TOKEN}"})
    fake = (
        FakeModel()
        .reply(tool_calls=[FakeToolCall("mcp__remote__echo", {"text": "over http"}, "h1")])
        .reply("ok")
    )
    harness, sink = make_harness(fake, tools=[server])
    try:
        await (await harness.session()).prompt("echo")
    finally:
        await harness.close()
    [done] = sink.of("tool")
    assert (done["toolName"], done["isError"]) == ("mcp__remote__echo", False)
    assert tool_text(done).endswith("echo: over http")


async def test_http_server_refusing_the_client_is_a_typed_error(http_server: str) -> None:
    server = mcp_tools(name="remote", url=http_server)  # no Authorization header
    harness, _sink = make_harness(FakeModel(), tools=[server])
    try:
        with pytest.raises(MCPConnectionError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.meta is not None
    assert caught.value.meta["transport"] == "streamable-http"
    assert caught.value.message.startswith(
        'MCP server "remote" (streamable-http) could not be connected: '
    )


async def test_nothing_listening_is_a_typed_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on once this socket closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = mcp_tools(name="remote", url=f"http://user:secret@127.0.0.1:{port}/mcp")
    harness, sink = make_harness(FakeModel(), tools=[server])
    try:
        with pytest.raises(MCPConnectionError) as caught:
            await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert caught.value.meta is not None
    assert caught.value.meta["target"] == f"http://127.0.0.1:{port}/mcp"
    assert "secret" not in str(sink.events)
