"""The pytest kit as a user meets it: the ``flue`` and ``fake_model`` fixtures, run against the
project's own ``workflows/summarize.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, assert_type

import pytest

from flue_actors import (
    ActionContext,
    ModelNotResolvedError,
    ModelRegistry,
    ModelRequest,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors.models import FakeProvider
from flue_actors.testing import (
    FakeModel,
    FakeModelExhaustedError,
    FakeTurn,
    FlueTestKit,
    RunResult,
)
from workflows.summarize import SummarizeOutput, summarize

RUN_ID = re.compile(r"^run_[0-9A-HJKMNP-TV-Z]{26}$")
INSTRUCTIONS = "Summarize the user's text in one or two sentences. Reply with the summary only."
ARTICLE = "Flue runs agent workflows. Each run has a record and an event history."


def test_summarize_with_a_scripted_reply(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("Flue runs workflows and records them.")

    run = flue.run(summarize, {"text": ARTICLE})

    assert RUN_ID.match(run.run_id)
    assert run.status == "completed"
    assert run.result == {"summary": "Flue runs workflows and records them."}
    assert run.error is None
    assert run.record.run_id == run.run_id
    assert run.record.status == "completed"
    assert run.record.workflow_name == "summarize"
    assert run.record.input == {"text": ARTICLE}
    assert run.record.result == run.result
    assert run.events[0]["type"] == "run_start"
    assert run.events[-1]["type"] == "run_end"
    assert run.events[-1]["result"] == run.result
    assert run.event_types.count("operation") == 1
    assert run.events_of("operation")[0]["result"] == {
        "text": "Flue runs workflows and records them."
    }
    assert fake_model.pending == 0


def test_fake_model_records_the_request(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("short")

    flue.run(summarize, {"text": ARTICLE})

    assert len(fake_model.requests) == 1
    request = fake_model.requests[0]
    assert request.system_prompt == INSTRUCTIONS
    assert request.model == "claude-haiku-4-5"
    assert request.messages[-1]["role"] == "user"
    assert request.messages[-1]["content"] == [{"type": "text", "text": ARTICLE}]


def test_run_by_name_uses_the_discovered_workflow(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("by name")
    assert "summarize" in flue.runtime.workflows

    run = flue.run("summarize", {"text": "anything"})

    assert run.status == "completed"
    assert run.result == {"summary": "by name"}
    assert run.record.workflow_name == "summarize"
    # The definition a test imports is the very one the kit discovered.
    assert flue.runtime.workflows.get("summarize").definition is summarize


def test_run_result_is_typed_by_the_workflow_output(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    # mypy (strict, over testing/) checks the assert_type lines; at run time they are no-ops.
    fake_model.reply("typed").reply("by name")

    run = flue.run(summarize, {"text": ARTICLE})
    assert_type(run, RunResult[SummarizeOutput])
    assert run.result["summary"] == "typed"  # JSON, indexable with no cast
    assert_type(run.output, SummarizeOutput)
    assert run.output == SummarizeOutput(summary="typed")
    assert run.result == {"summary": "typed"}  # output is read from result, not in its place

    by_name = flue.run("summarize", {"text": ARTICLE})
    assert_type(by_name, RunResult[Any])
    assert by_name.output == SummarizeOutput(summary="by name")


def test_output_of_a_workflow_without_a_schema_is_its_json(flue: FlueTestKit) -> None:
    @define_workflow(agent=define_agent(model="fake/echo"))
    async def untyped(ctx: ActionContext[None]) -> Any:  # Any declares no output schema
        return {"n": [1, 2]}

    @define_workflow(agent=define_agent(model="fake/echo"))
    async def pair(ctx: ActionContext[None]) -> tuple[int, str]:
        return (1, "a")

    flue.register(untyped, "untyped")
    flue.register(pair, "pair")
    untyped_run = flue.run(untyped)
    assert_type(untyped_run, RunResult[Any])
    assert untyped_run.output == untyped_run.result == {"n": [1, 2]}
    pair_run = flue.run(pair)
    assert_type(pair_run.output, tuple[int, str])
    assert pair_run.result == [1, "a"]
    assert pair_run.output == (1, "a")


def test_a_run_that_did_not_complete_has_no_output(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    run = flue.run(summarize, {"body": "wrong key"})

    assert run.status == "errored"
    with pytest.raises(AssertionError, match=r"ended errored, not completed.*action_input"):
        _ = run.output


def test_respond_with_a_sync_responder(flue: FlueTestKit, fake_model: FakeModel) -> None:
    seen: list[str] = []

    def respond(request: ModelRequest) -> str:
        text = request.messages[-1]["content"][0]["text"]
        seen.append(text)
        return f"{len(text)} characters"

    fake_model.respond_with(respond)
    first = flue.run(summarize, {"text": "abc"})
    second = flue.run(summarize, {"text": "abcdef"})

    assert first.result == {"summary": "3 characters"}
    assert second.result == {"summary": "6 characters"}
    assert seen == ["abc", "abcdef"]


def test_respond_with_an_async_responder_returning_a_turn(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    async def respond(request: ModelRequest) -> FakeTurn:
        return FakeTurn(text="streamed summary", chunks=["streamed ", "summary"])

    fake_model.respond_with(respond)
    run = flue.run(summarize, {"text": ARTICLE})

    assert run.result == {"summary": "streamed summary"}
    assert [event["text"] for event in run.events_of("text_delta")] == ["streamed ", "summary"]


def test_script_is_used_before_the_responder(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("scripted").respond_with(lambda request: "dynamic")
    assert flue.run(summarize, {"text": "1"}).result == {"summary": "scripted"}
    assert flue.run(summarize, {"text": "2"}).result == {"summary": "dynamic"}


def test_exhausted_script_raises(flue: FlueTestKit, fake_model: FakeModel) -> None:
    with pytest.raises(FakeModelExhaustedError) as caught:
        flue.run(summarize, {"text": ARTICLE})
    message = str(caught.value)
    assert "reply(" in message
    assert "respond_with(" in message
    assert "#1" in message
    assert isinstance(caught.value, AssertionError)


def test_exhausted_after_the_scripted_turns(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("only one")
    assert flue.run(summarize, {"text": "first"}).status == "completed"
    with pytest.raises(FakeModelExhaustedError, match=r"held 1 turn"):
        flue.run(summarize, {"text": "second"})


def test_invalid_input_is_an_errored_run(flue: FlueTestKit, fake_model: FakeModel) -> None:
    run = flue.run(summarize, {"body": "wrong key"})

    assert run.status == "errored"
    assert run.result is None
    assert run.error is not None
    assert run.error["name"] == "ActionInputValidationError"
    assert run.error["type"] == "action_input_validation"
    assert run.event_types == ["run_start", "run_end"]
    assert fake_model.requests == []


def _events_of_a_fresh_kit(workflows: Path) -> list[dict[str, Any]]:
    fake = FakeModel().reply("same every time", chunks=["same ", "every time"])
    kit = FlueTestKit(fake, workflows=workflows)
    try:
        return kit.run("summarize", {"text": ARTICLE}).events
    finally:
        kit.close()


def test_runs_are_deterministic_across_kits(pytestconfig: pytest.Config) -> None:
    workflows = pytestconfig.rootpath / "workflows"
    first = _events_of_a_fresh_kit(workflows)
    second = _events_of_a_fresh_kit(workflows)

    assert first == second
    assert len(first) > 10
    assert first[0]["runId"] == "run_00000000000000000000000001"
    assert first[0]["timestamp"] == "2026-01-01T00:00:00.001Z"


def test_flue_model_override_resolves_every_model_to_echo() -> None:
    models = ModelRegistry.from_environment({"FLUE_MODEL": "fake/echo"})
    resolved = models.resolve("anthropic/claude-haiku-4-5")
    assert isinstance(resolved.provider, FakeProvider)
    assert resolved.provider_name == "fake"
    assert resolved.model_id == "echo"
    assert models.resolve("openai/gpt-5").model_id == "echo"


def test_without_flue_model_the_agent_model_is_used() -> None:
    models = ModelRegistry.from_environment({})
    resolved = models.resolve("fake/echo")
    assert resolved.model_id == "echo"
    # anthropic is built in, and resolving it needs no key (the key is read at the first call).
    assert models.resolve("anthropic/claude-haiku-4-5").provider_name == "anthropic"
    with pytest.raises(ModelNotResolvedError, match=r'"nowhere/model-x" could not be'):
        models.resolve("nowhere/model-x")


async def test_echo_model_replies_with_the_last_user_message(pytestconfig: pytest.Config) -> None:
    runtime = Runtime(
        pytestconfig.rootpath / "workflows",
        store=SqliteEventStore(":memory:"),
        models=ModelRegistry.from_environment({"FLUE_MODEL": "fake/echo"}),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    async with runtime:
        record = await runtime.run("summarize", {"text": "echo me back"}, timeout=2.0)
        assert record.status == "completed"
        assert record.result == SummarizeOutput(summary="echo me back").model_dump()
        events = await runtime.events(record.run_id)
        turn = next(event for event in events if event["type"] == "turn")
        assert turn["request"]["providerName"] == "fake"
        assert turn["request"]["requestedModel"] == "echo"
