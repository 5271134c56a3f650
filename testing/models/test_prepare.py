"""Which model providers a process gets ready before taking work: those of the models its
workflows' agents name up front (or ``FLUE_MODEL``'s), resolved as a run would resolve them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    AgentDefinition,
    Runtime,
    WorkflowDefinition,
    define_agent,
    define_agent_profile,
    define_workflow,
)
from flue_actors.models import AnthropicProvider, ModelRegistry


class Text(BaseModel):
    text: str


def _workflow(agent: AgentDefinition) -> WorkflowDefinition[Text]:
    @define_workflow(agent=agent)
    async def workflow(ctx: ActionContext[Text]) -> Text:
        return ctx.input

    return workflow


def _connected(provider: AnthropicProvider) -> bool:
    return provider._sdk is not None


def test_an_anthropic_model_makes_the_providers_client_and_others_are_left_alone() -> None:
    anthropic = AnthropicProvider(api_key="sk-ant-x", base_url="http://127.0.0.1:9")
    registry = ModelRegistry({"anthropic": anthropic})
    assert registry.prepare(["fake/echo"]) == []
    assert not _connected(anthropic)
    assert registry.prepare(["fake/echo", "anthropic/claude-haiku-4-5", "nobody/model"]) == [
        "anthropic"
    ]
    assert _connected(anthropic)


@pytest.mark.parametrize(
    ("override", "declared", "prepared"),
    [
        ("fake/echo", ["anthropic/claude-haiku-4-5"], []),
        # Agents made by initializers name nothing up front; the override still applies.
        ("anthropic/claude-haiku-4-5", [], ["anthropic"]),
    ],
)
def test_the_override_decides_whatever_the_agents_name(
    override: str, declared: list[str], prepared: list[str]
) -> None:
    anthropic = AnthropicProvider(api_key="sk-ant-x", base_url="http://127.0.0.1:9")
    registry = ModelRegistry({"anthropic": anthropic}, override=override)
    assert registry.prepare(declared) == prepared
    assert _connected(anthropic) is bool(prepared)


def test_without_a_key_only_the_sdk_is_imported_and_the_first_call_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    anthropic = AnthropicProvider()
    assert ModelRegistry({"anthropic": anthropic}).prepare(["anthropic/claude-haiku-4-5"]) == [
        "anthropic"
    ]
    assert not _connected(anthropic)


async def test_a_runtime_prepares_what_its_workflows_agents_name() -> None:
    reviewer = define_agent_profile(name="reviewer", model="anthropic/claude-sonnet-4-5")
    inheriting = define_agent_profile(name="helper", subagents=[reviewer])
    workflows = {
        "plain": _workflow(define_agent(model="fake/echo", subagents=[inheriting])),
        # An initializer names its model per run: nothing is known up front.
        "dynamic": _workflow(define_agent(lambda _ctx: {"model": "anthropic/claude-opus-4-1"})),
    }
    anthropic = AnthropicProvider(api_key="sk-ant-x", base_url="http://127.0.0.1:9")
    async with Runtime(workflows, models=ModelRegistry({"anthropic": anthropic})) as runtime:
        assert runtime.workflows.declared_models() == {
            "fake/echo",
            "anthropic/claude-sonnet-4-5",
        }
        assert runtime.prepare_models() == ["anthropic"]
        assert _connected(anthropic)
