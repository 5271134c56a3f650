"""Skills (reference 1.5): ``session.skill()``'s prompt text, unknown skills, the model's skill
tools, and per-call model overrides."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flue_actors import DefinitionError, SkillNotRegisteredError, define_skill
from flue_actors._definitions import BUILTIN_TOOL_NAMES
from flue_actors._harness.results import FOOTER
from flue_actors.testing import FakeModel, FakeToolCall

from .support import make_harness

REVIEW = define_skill(
    name="review",
    description="Review a change.",
    instructions="Read the diff and list the problems.",
    resources={"checklist": "1. tests\n2. names"},
)
GREET = define_skill(name="greet", description="Say hello.", instructions="Say hello.")


async def test_skill_prompt_text_is_exact() -> None:
    fake = FakeModel().reply("done")
    harness, sink = make_harness(fake, skills=[REVIEW])

    response = await (await harness.session()).skill("review", args={"pr": 7, "tags": ["a"]})

    assert response.text == "done"
    text = fake.requests[0].messages[0]["content"][0]["text"]
    assert text == (
        'Run the skill named "review".\n\n'
        "Read the diff and list the problems.\n\n"
        'Resources (read them with `read_skill_resource`): "checklist"\n\n'
        'Arguments:\n{\n  "pr": 7,\n  "tags": [\n    "a"\n  ]\n}'
    )
    [start] = sink.of("operation_start")
    assert start["operationKind"] == "skill"


async def test_skill_without_args_or_resources() -> None:
    fake = FakeModel().reply("hi")
    harness, _sink = make_harness(fake, skills=[GREET])

    await (await harness.session()).skill("greet")

    assert fake.requests[0].messages[0]["content"][0]["text"] == (
        'Run the skill named "greet".\n\nSay hello.'
    )


async def test_unknown_skill() -> None:
    harness, sink = make_harness(FakeModel(), skills=[GREET])
    session = await harness.session()

    with pytest.raises(SkillNotRegisteredError) as caught:
        await session.skill("nope")

    assert caught.value.type == "skill_not_registered"
    assert caught.value.message == 'Skill "nope" is not registered.'
    assert sink.events == []


async def test_skill_with_result_and_model_override() -> None:
    class Verdict(BaseModel):
        ok: bool

    fake = FakeModel().reply(tool_calls=[FakeToolCall("finish", {"ok": True}, "f1")])
    harness, _sink = make_harness(fake, skills=[GREET])

    response = await (await harness.session()).skill(
        "greet", result=Verdict, model="fake/other", thinking_level="high"
    )

    assert response.data == Verdict(ok=True)
    request = fake.requests[0]
    assert (request.model, request.thinking_level) == ("other", "high")
    assert request.messages[0]["content"][0]["text"].endswith(FOOTER)


async def test_the_model_gets_skill_tools() -> None:
    fake = (
        FakeModel()
        .reply(tool_calls=[FakeToolCall("activate_skill", {"name": "review"}, "a1")])
        .reply(
            tool_calls=[
                FakeToolCall(
                    "read_skill_resource", {"skill": "review", "resource": "checklist"}, "r1"
                )
            ]
        )
        .reply("reviewed")
    )
    harness, sink = make_harness(fake, skills=[REVIEW])

    await (await harness.session()).prompt("Review PR 7.")

    names = {tool.name for tool in fake.requests[0].tools}
    assert names == set(BUILTIN_TOOL_NAMES) | {"activate_skill", "read_skill_resource"}
    activated, read = sink.of("tool")
    assert activated["result"]["content"][0]["text"].startswith("Read the diff")
    assert read["result"]["content"][0]["text"] == "1. tests\n2. names"
    assert not activated["isError"]
    assert not read["isError"]


async def test_no_skill_tools_without_skills() -> None:
    fake = FakeModel().reply("plain")
    harness, _sink = make_harness(fake)

    await (await harness.session()).prompt("hi")

    # Only the sandbox's workspace tools: no skill tools without skills.
    assert [tool.name for tool in fake.requests[0].tools] == list(BUILTIN_TOOL_NAMES)


def test_define_skill_validates() -> None:
    with pytest.raises(DefinitionError):
        define_skill(name=" ", description="d", instructions="i")
    with pytest.raises(DefinitionError):
        define_skill(name="n", description="d", instructions="i", resources={"x": 1})  # type: ignore[dict-item]
