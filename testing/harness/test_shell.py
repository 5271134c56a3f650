"""``harness.shell`` and ``session.shell`` (reference 1.4, 1.5): bash tool events, no
operation for the harness form, an operation and conversation messages for the session form,
and env values never recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flue_actors import ActionContext, define_agent, define_workflow
from flue_actors.sandbox import ShellResult
from flue_actors.testing import FakeModel, FlueTestKit, RecordingSink
from harness.test_sessions import make_harness

SECRET = "sk-very-secret-value-42"
UUID_LIKE = 36


async def test_harness_shell_emits_bash_tool_events_and_no_operation() -> None:
    sink = RecordingSink()
    harness = make_harness(sink=sink)
    result = await harness.shell("echo out; echo err >&2")
    assert result == ShellResult("out\n", "err\n", 0)
    assert sink.types == ["tool_start", "tool"]
    start, end = sink.events
    assert start == {
        "type": "tool_start",
        "toolName": "bash",
        "toolCallId": start["toolCallId"],
        "harness": "default",
    }
    assert len(start["toolCallId"]) == UUID_LIKE
    assert "args" not in start
    assert end == {
        "type": "tool",
        "toolName": "bash",
        "toolCallId": start["toolCallId"],
        "isError": False,
        "result": {
            "content": [{"type": "text", "text": "out\nerr\n"}],
            # stderr on its own too: a resumed run answers the command from this event and
            # must give back stdout and stderr apart.
            "details": {"command": "echo out; echo err >&2", "exitCode": 0, "stderr": "err\n"},
        },
        "durationMs": end["durationMs"],
        "harness": "default",
    }


async def test_harness_shell_nonzero_exit_is_an_error_result() -> None:
    sink = RecordingSink()
    result = await make_harness(sink=sink).shell("exit 4")
    assert result.exit_code == 4
    tool = sink.of("tool")[0]
    assert tool["isError"] is True
    assert tool["result"]["details"] == {"command": "exit 4", "exitCode": 4}


async def test_harness_shell_exception_records_exit_minus_one_and_reraises() -> None:
    sink = RecordingSink()
    harness = make_harness(sink=sink)
    with pytest.raises(Exception, match="outside the sandbox"):
        await harness.shell("pwd", cwd="../../..")
    tool = sink.of("tool")[0]
    assert tool["isError"] is True
    assert tool["result"]["details"] == {"command": "pwd", "exitCode": -1}


async def test_session_shell_is_an_operation_and_joins_the_conversation() -> None:
    sink = RecordingSink()
    harness = make_harness(sink=sink)
    session = await harness.session()
    result = await session.shell("echo hi")
    assert result.stdout == "hi\n"
    assert sink.types == ["operation_start", "tool_start", "tool", "operation", "idle"]
    started, operation = sink.of("operation_start")[0], sink.of("operation")[0]
    assert started["operationKind"] == operation["operationKind"] == "shell"
    assert operation["isError"] is False
    assert operation["result"] == {"stdout": "hi\n", "stderr": "", "exitCode": 0}
    tool = sink.of("tool")[0]
    assert tool["operationId"] == started["operationId"]
    assert tool["session"] == "default"
    call_id = tool["toolCallId"]
    assert session.messages[0]["role"] == "assistant"
    assert session.messages[0]["content"] == [
        {"type": "toolCall", "id": call_id, "name": "bash", "arguments": {"command": "echo hi"}}
    ]
    assert session.messages[1] == {
        "role": "toolResult",
        "toolCallId": call_id,
        "toolName": "bash",
        "content": [{"type": "text", "text": "hi\n"}],
        "isError": False,
        "timestamp": session.messages[1]["timestamp"],
    }


async def test_session_shell_conversation_reaches_the_model() -> None:
    fake = FakeModel()
    fake.reply("seen")
    harness = make_harness(fake)
    session = await harness.session()
    await session.shell("echo context")
    await session.prompt("what did it print?")
    roles = [message["role"] for message in fake.requests[0].messages]
    assert roles == ["assistant", "toolResult", "user"]


shell_agent = define_agent(model="anthropic/claude-haiku-4-5")


@define_workflow(agent=shell_agent)
async def with_secret(ctx: ActionContext[None]) -> dict[str, Any]:
    env = {"API_TOKEN": SECRET}
    direct = await ctx.harness.shell('echo "token=$API_TOKEN" | wc -c', env=env)
    session = await ctx.harness.session()
    inside = await session.shell('test -n "$API_TOKEN" && echo set', env=env)
    return {"direct": direct.stdout.strip(), "inside": inside.stdout.strip()}


def test_env_values_never_appear_in_stored_events(flue: FlueTestKit, fake_model: FakeModel) -> None:
    run = flue.run(with_secret)
    assert run.status == "completed"
    assert run.result == {"direct": str(len("token=" + SECRET) + 1), "inside": "set"}
    assert run.event_types.count("tool") == 2
    stored = json.dumps(run.events)
    assert SECRET not in stored
    assert "API_TOKEN" in stored  # the command text itself is recorded
