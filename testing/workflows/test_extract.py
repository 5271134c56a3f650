"""workflows/extract.py as a user tests it: the model answers through ``finish``."""

from __future__ import annotations

from flue_actors._definitions import BUILTIN_TOOL_NAMES
from flue_actors.testing import FakeModel, FakeToolCall, FlueTestKit
from workflows.extract import extract

TEXT = "Mail Ada Lovelace (ada@example.com) at Analytical Engines Ltd."


def test_extract_returns_the_structured_contact(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(
        tool_calls=[
            FakeToolCall(
                "finish",
                {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical"},
                "call_finish",
            )
        ]
    )

    run = flue.run(extract, {"text": TEXT})

    assert run.status == "completed"
    assert run.result == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical",
    }
    [tool] = run.events_of("tool")
    assert (tool["toolName"], tool["toolCallId"], tool["isError"]) == (
        "finish",
        "call_finish",
        False,
    )
    [request] = fake_model.requests
    assert {tool.name for tool in request.tools} == set(BUILTIN_TOOL_NAMES) | {"finish", "give_up"}
    assert request.messages[0]["content"][0]["text"].startswith(TEXT)


def test_extract_corrects_an_invalid_answer(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(tool_calls=[FakeToolCall("finish", {"email": "ada@example.com"}, "bad")])
    fake_model.reply(tool_calls=[FakeToolCall("finish", {"name": "Ada"}, "good")])

    run = flue.run(extract, {"text": TEXT})

    assert run.result == {"name": "Ada", "email": None, "company": None}
    assert [tool["isError"] for tool in run.events_of("tool")] == [True, False]


def test_extract_fails_the_run_when_the_model_gives_up(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    fake_model.reply(tool_calls=[FakeToolCall("give_up", {"reason": "nobody named"}, "g")])

    run = flue.run(extract, {"text": "The weather is nice."})

    assert run.status == "errored"
    assert run.error is not None
    assert run.error["name"] == "ResultUnavailableError"
    assert run.error["message"] == "The agent gave up: nobody named"
