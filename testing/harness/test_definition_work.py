"""Work that depends only on definitions is done once per definition, not once per run: tool
schemas (generating the six built-in tools' JSON schemas per run once cost 91% of a fake-model
run), structured-result validators, and the default sandbox, which a run that never touches a
file never builds. Checked by counting calls and by identity, never by timing."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import flue_actors._harness.harness as harness_module
from flue_actors import define_tool
from flue_actors._harness.results import ResultSpec
from flue_actors._harness.workspace_tools import WORKSPACE_TOOLS
from flue_actors.sandbox import create_sandbox
from flue_actors.testing import FakeModel

from .support import make_harness


class CountedInput(BaseModel):
    """Counts how often its JSON schema is generated."""

    generated: ClassVar[int] = 0
    query: str

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        CountedInput.generated += 1
        return super().model_json_schema(*args, **kwargs)


async def _lookup(args: CountedInput) -> str:
    return args.query


lookup = define_tool(name="lookup", description="Look a word up.", input=CountedInput, run=_lookup)


async def test_tool_schemas_are_generated_once_for_any_number_of_runs() -> None:
    CountedInput.generated = 0
    fakes = [FakeModel().reply("done") for _ in range(5)]
    harnesses = [make_harness(fake, tools=[lookup])[0] for fake in fakes]
    for harness, fake in zip(harnesses, fakes, strict=True):
        await (await harness.session()).prompt("hello")
        await harness.close()
        assert [spec.name for spec in fake.requests[0].tools][-1] == "lookup"
    assert CountedInput.generated <= 1
    # Every run hands the model the very same spec objects, built-in tools included.
    first, *others = [fake.requests[0].tools for fake in fakes]
    for tools in others:
        assert len(tools) == len(first) == 7
        assert all(a is b for a, b in zip(first, tools, strict=True))
    assert first[-1].parameters["properties"]["query"]["type"] == "string"


async def test_the_built_in_tools_are_defined_once_and_bound_to_each_run_by_its_workspace() -> None:
    fake = FakeModel()
    fake.reply(tool_calls=[("write", {"path": "a.txt", "content": "A"})]).reply("done")
    fake.reply(tool_calls=[("read", {"path": "a.txt"})]).reply("done")
    first, _ = make_harness(fake)
    second, _ = make_harness(fake)
    for harness in (first, second):
        session = await harness.session()
        tools = session.state.scope.tools
        # No tool definition, closure, name table or spec list is made for a run.
        assert [tools._tools[tool.name] for tool in WORKSPACE_TOOLS] == list(WORKSPACE_TOOLS)
        assert [spec.name for spec in tools.specs] == [tool.name for tool in WORKSPACE_TOOLS]
        await session.prompt("go")
    assert first.workspace is not second.workspace
    # Each run's tools worked on its own sandbox.
    assert await first.fs.read_file("a.txt") == "A"
    assert not await second.fs.exists("a.txt")
    refused = fake.requests[3].messages[-1]
    assert refused["isError"] is True
    assert refused["content"] == [
        {"type": "text", "text": "WorkspaceToolError: File not found: a.txt"}
    ]
    await first.close()
    await second.close()


def test_a_result_type_gets_one_validator_however_often_it_is_asked_for() -> None:
    class Verdict(BaseModel):
        ok: bool

    assert ResultSpec.of(Verdict) is ResultSpec.of(Verdict)
    assert ResultSpec.of(list[int]) is ResultSpec.of(list[int])
    assert ResultSpec.of(list[int]).wrapped
    assert ResultSpec.of(Verdict).validate({"ok": True}) == Verdict(ok=True)


async def test_the_default_sandbox_is_built_only_when_a_file_or_shell_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[object] = []
    real = create_sandbox

    def counting(choice: Any, context: Any) -> Any:
        made.append(choice)
        return real(choice, context)

    monkeypatch.setattr(harness_module, "create_sandbox", counting)
    harness, _ = make_harness(FakeModel().reply("done"))
    await (await harness.session()).prompt("hello")
    assert made == []
    await harness.fs.write_file("a.txt", "A\n")
    assert (await harness.sandbox.run("cat a.txt")).stdout == "A\n"
    assert made == ["virtual"]
    await harness.close()

    idle, _ = make_harness(FakeModel())
    await idle.close()  # nothing was built, so nothing is closed
    assert made == ["virtual"]
