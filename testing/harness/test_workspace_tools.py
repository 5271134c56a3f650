"""The built-in workspace tools (read, write, edit, bash, grep, glob) driven by scripted model
tool calls through real runs, including error results the model then corrects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import ActionContext, AgentConfig, define_agent, define_tool, define_workflow
from flue_actors.errors import ToolNameConflictError
from flue_actors.testing import FakeModel, FlueTestKit, RunResult

agent = define_agent(model="anthropic/claude-haiku-4-5")


class Files(BaseModel):
    files: dict[str, str] = {}
    read_back: list[str] = []


@define_workflow(agent=agent)
async def workspace(ctx: ActionContext[Files]) -> dict[str, Any]:
    """Stage files, let the model work, return what the named files then contain."""
    for path, text in ctx.input.files.items():
        await ctx.harness.fs.write_file(path, text)
    session = await ctx.harness.session()
    response = await session.prompt("work on the files")
    contents = {}
    for path in ctx.input.read_back:
        if await ctx.harness.fs.exists(path):
            contents[path] = await ctx.harness.fs.read_file(path)
    return {"text": response.text, "files": contents}


def results(run: RunResult) -> list[tuple[str, bool, str]]:
    return [
        (tool["toolName"], tool["isError"], tool["result"]["content"][0]["text"])
        for tool in run.events_of("tool")
    ]


def test_write_then_read(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(tool_calls=[("write", {"path": "notes/a.md", "content": "# A\nline 2\n"})])
    fake_model.reply(tool_calls=[("read", {"path": "notes/a.md", "offset": 2})])
    fake_model.reply("done")
    run = flue.run(workspace, {"read_back": ["/workspace/notes/a.md"]})
    assert run.status == "completed"
    assert run.result["files"] == {"/workspace/notes/a.md": "# A\nline 2\n"}
    assert results(run) == [
        ("write", False, "Wrote 11 bytes to notes/a.md."),
        ("read", False, "line 2\n"),
    ]
    assert run.event_types.count("tool_start") == 2


def test_read_missing_file_is_an_error_the_model_corrects(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    fake_model.reply(tool_calls=[("read", {"path": "nope.txt"})])
    fake_model.reply(tool_calls=[("read", {"path": "doc.txt"})])
    fake_model.reply("ok")
    run = flue.run(workspace, {"files": {"doc.txt": "content"}})
    assert run.status == "completed"
    assert results(run) == [
        ("read", True, "WorkspaceToolError: File not found: nope.txt"),
        ("read", False, "content"),
    ]
    # The error result went back to the model, as a toolResult it could read.
    sent = fake_model.requests[1].messages[-1]
    assert sent["role"] == "toolResult"
    assert sent["isError"] is True


def test_edit_exact_replacement_and_its_errors(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(
        tool_calls=[("edit", {"path": "f.txt", "old_string": "zzz", "new_string": "y"})]
    )
    fake_model.reply(tool_calls=[("edit", {"path": "f.txt", "old_string": "a", "new_string": "b"})])
    fake_model.reply(
        tool_calls=[("edit", {"path": "f.txt", "old_string": "a = 1", "new_string": "a = 2"})]
    )
    fake_model.reply("edited")
    run = flue.run(workspace, {"files": {"f.txt": "a = 1\nab\n"}, "read_back": ["f.txt"]})
    assert run.result["files"] == {"f.txt": "a = 2\nab\n"}
    assert results(run) == [
        ("edit", True, "WorkspaceToolError: old_string was not found in f.txt."),
        (
            "edit",
            True,
            "WorkspaceToolError: old_string occurs 2 times in f.txt; give more context to "
            "make it unique, or set replace_all.",
        ),
        ("edit", False, "Replaced 1 occurrence(s) in f.txt."),
    ]


def test_bash_runs_in_the_sandbox(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(tool_calls=[("bash", {"command": "wc -l < doc.txt; echo made > out.txt"})])
    fake_model.reply(tool_calls=[("bash", {"command": "cat missing"})])
    fake_model.reply("ran")
    run = flue.run(workspace, {"files": {"doc.txt": "1\n2\n"}, "read_back": ["out.txt"]})
    assert run.result["files"] == {"out.txt": "made\n"}
    (ok_name, ok_error, ok_text), (_, failed_error, failed_text) = results(run)
    assert (ok_name, ok_error, ok_text) == ("bash", False, "2\n")
    assert failed_error is True
    assert "Command exited with code 1" in failed_text


def test_grep_and_glob(flue: FlueTestKit, fake_model: FakeModel) -> None:
    files = {"src/a.py": "import os\nx = 1\n", "src/sub/b.py": "import re\n", "README.md": "hi\n"}
    fake_model.reply(tool_calls=[("grep", {"pattern": r"^import \w+", "path": "src"})])
    fake_model.reply(tool_calls=[("glob", {"pattern": "**/*.py"})])
    fake_model.reply(tool_calls=[("grep", {"pattern": "("})])
    fake_model.reply("found")
    run = flue.run(workspace, {"files": files})
    assert results(run) == [
        (
            "grep",
            False,
            "/workspace/src/a.py:1:import os\n/workspace/src/sub/b.py:1:import re",
        ),
        ("glob", False, "/workspace/src/a.py\n/workspace/src/sub/b.py"),
        (
            "grep",
            True,
            "WorkspaceToolError: Invalid regular expression: missing ), unterminated "
            "subpattern at position 0",
        ),
    ]


def test_workspace_tools_see_a_local_sandbox(flue: FlueTestKit, fake_model: FakeModel) -> None:
    local_agent = define_agent(model="anthropic/claude-haiku-4-5", sandbox="local")

    @define_workflow(agent=local_agent)
    async def local(ctx: ActionContext[None]) -> str:
        session = await ctx.harness.session()
        await session.prompt("write")
        return await ctx.harness.fs.read_file("out.txt")

    fake_model.reply(tool_calls=[("bash", {"command": "echo local > out.txt"})])
    fake_model.reply("ok")
    run = flue.run(local)
    assert run.result == "local\n"


class Empty(BaseModel):
    pass


async def _noop(args: Empty) -> str:
    return ""


@pytest.mark.parametrize("name", ["read", "write", "edit", "bash", "grep", "glob"])
def test_tool_name_conflicts_with_builtins_are_refused(name: str) -> None:
    tool = define_tool(name=name, description="mine", input=Empty, run=_noop)
    with pytest.raises(ToolNameConflictError) as raised:
        AgentConfig(model="fake/echo", tools=[tool])
    assert raised.value.type == "tool_name_conflict"
    with pytest.raises(ToolNameConflictError):
        define_agent(model="fake/echo", tools=[tool])
