"""define_workflow / define_action / define_agent / define_tool (reference 1.1-1.3).

The definitions are plain values validated at import time; these tests check what each ``define_*``
accepts and refuses, what it infers from type hints, and the input/output contract of an action
(``parse_input`` / ``serialize_output``) that the runtime relies on.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from typing import Any

import pytest
import typing_extensions
from pydantic import BaseModel

from flue_actors import (
    UNSET,
    ActionContext,
    ActionDefinition,
    ActionInputValidationError,
    ActionOutputSerializationError,
    ActionOutputValidationError,
    AgentConfig,
    AgentContext,
    AgentDefinition,
    DefinitionError,
    Placement,
    ToolDefinition,
    ToolNameConflictError,
    WorkflowDefinition,
    WorkflowInputUnexpectedError,
    define_action,
    define_agent,
    define_agent_profile,
    define_tool,
    define_workflow,
)
from flue_actors._definitions import BUILTIN_TOOL_NAMES, RESERVED_TOOL_NAMES
from flue_actors._runtime.ray.backend import actor_options

# --- schemas used throughout (module level, so postponed annotations resolve) -----------------


class TextInput(BaseModel):
    text: str


class OptionalInput(BaseModel):
    count: int = 3


class SummaryOutput(BaseModel):
    summary: str


class ExtTypedInput(typing_extensions.TypedDict, total=False):
    count: int


class StdTypedInput(typing.TypedDict, total=False):
    count: int


@dataclasses.dataclass
class DataInput:
    count: int = 2


class AddArgs(BaseModel):
    a: int
    b: int


AGENT = define_agent(model="fake/echo")


async def _noop(ctx: ActionContext[Any]) -> None:
    return None


async def _hinted(ctx: ActionContext[TextInput]) -> SummaryOutput:
    return SummaryOutput(summary=ctx.input.text)


async def _add(args: AddArgs) -> int:
    return args.a + args.b


def _action(**overrides: Any) -> ActionDefinition[Any, Any]:
    options: dict[str, Any] = {"name": "act", "description": "An action.", "run": _noop}
    options.update(overrides)
    action: ActionDefinition[Any, Any] = define_action(**options)
    return action


async def _configure(agent: AgentDefinition, run_id: str = "run_X") -> AgentConfig:
    return await agent.configure(AgentContext(id=run_id, env={}))


# --- define_workflow: the three forms -----------------------------------------------------------


def test_workflow_action_form_keeps_the_action_and_agent() -> None:
    action = define_action(name="summarize-text", description="Summarize.", run=_hinted)

    workflow = define_workflow(agent=AGENT, action=action)

    assert isinstance(workflow, WorkflowDefinition)
    assert workflow.action is action
    assert workflow.agent is AGENT
    assert workflow.action.name == "summarize-text"


def test_workflow_run_form_creates_a_private_action_named_workflow() -> None:
    workflow = define_workflow(agent=AGENT, input=TextInput, output=SummaryOutput, run=_noop)

    assert workflow.action.name == "workflow"
    assert workflow.action.description == "Workflow-private action."
    assert workflow.action.input is TextInput
    assert workflow.action.output is SummaryOutput
    assert workflow.action.run is _noop


def test_workflow_decorator_form_reads_schemas_from_hints() -> None:
    @define_workflow(agent=AGENT)
    async def summarize(ctx: ActionContext[TextInput]) -> SummaryOutput:
        return SummaryOutput(summary=ctx.input.text)

    assert isinstance(summarize, WorkflowDefinition)
    assert summarize.agent is AGENT
    assert summarize.action.name == "workflow"
    assert summarize.action.input is TextInput
    assert summarize.action.output is SummaryOutput


def test_inline_action_name_appears_in_validation_errors() -> None:
    workflow = define_workflow(agent=AGENT, input=TextInput, run=_noop)

    with pytest.raises(ActionInputValidationError) as caught:
        workflow.action.parse_input({"text": 5})

    assert caught.value.meta is not None
    assert caught.value.meta["action"] == "workflow"
    assert caught.value.message == 'Action "workflow" input does not match the required schema.'


@pytest.mark.parametrize("key", ["input", "output"])
def test_workflow_action_form_refuses_input_or_output(key: str) -> None:
    action = _action()
    with pytest.raises(DefinitionError, match=r"does not accept input or output"):
        define_workflow(agent=AGENT, action=action, **{key: TextInput})  # type: ignore[call-overload]


@pytest.mark.parametrize("key", ["input", "output"])
def test_workflow_action_form_refuses_input_or_output_even_when_none(key: str) -> None:
    # Flue checks for the key (own property), not for a value: ``input: undefined`` is refused too.
    action = _action()
    with pytest.raises(DefinitionError, match=r"does not accept input or output"):
        define_workflow(agent=AGENT, action=action, **{key: None})  # type: ignore[call-overload]


def test_workflow_refuses_both_action_and_run() -> None:
    with pytest.raises(DefinitionError, match=r"exactly one of action or run"):
        define_workflow(agent=AGENT, action=_action(), run=_noop)  # type: ignore[call-overload]


def test_workflow_action_must_be_a_define_action_value() -> None:
    with pytest.raises(DefinitionError, match=r"define_action\(\) value"):
        define_workflow(agent=AGENT, action={"name": "x"})  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "agent",
    [
        None,
        {"model": "fake/echo"},
        AgentConfig(model="fake/echo"),
        lambda ctx: {"model": "fake/echo"},
    ],
    ids=["none", "mapping", "agent-config", "bare-initializer"],
)
def test_workflow_agent_must_be_a_define_agent_value(agent: Any) -> None:
    with pytest.raises(DefinitionError, match=r"must be a define_agent\(\) value"):
        define_workflow(agent=agent, run=_noop)


def test_definition_errors_are_type_errors_with_flue_prefix() -> None:
    with pytest.raises(TypeError) as caught:
        define_workflow(agent=AGENT, action=_action(), run=_noop)  # type: ignore[call-overload]
    assert str(caught.value).startswith("[flue] ")
    assert isinstance(caught.value, DefinitionError)
    assert caught.value.type == "definition_invalid"


def test_workflows_compare_by_identity() -> None:
    action = _action()
    first = define_workflow(agent=AGENT, action=action)
    second = define_workflow(agent=AGENT, action=action)
    assert first is not second
    assert first != second


# --- define_action --------------------------------------------------------------------------------


def test_define_action_keyword_and_decorator_forms() -> None:
    keyword = define_action(name="a", description="d", run=_noop)

    @define_action(name="  b  ", description=" described ")
    async def decorated(ctx: ActionContext[None]) -> None:
        return None

    assert isinstance(keyword, ActionDefinition)
    assert keyword.run is _noop
    assert isinstance(decorated, ActionDefinition)
    assert decorated.name == "b"
    assert decorated.description == "described"
    assert decorated.input is None
    assert decorated.output is None


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_define_action_name_must_be_non_empty(name: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        _action(name=name)
    assert str(caught.value) == "[flue] define_action({ name }) must be a non-empty string."


@pytest.mark.parametrize("description", ["", "\t\n", None])
def test_define_action_description_must_be_non_empty(description: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        _action(description=description)
    assert str(caught.value) == "[flue] define_action({ description }) must be a non-empty string."


def test_define_action_run_must_be_async() -> None:
    def sync_run(ctx: ActionContext[None]) -> None:
        return None

    with pytest.raises(DefinitionError, match=r"must be an async function"):
        _action(run=sync_run)
    with pytest.raises(DefinitionError, match=r"must be an async function"):
        _action(run="not callable")


@pytest.mark.parametrize(
    "schema",
    [int, str, list[str], dict[str, int], TextInput | None],
    ids=["int", "str", "list", "dict", "optional-model"],
)
def test_define_action_input_must_be_an_object_schema(schema: Any) -> None:
    with pytest.raises(DefinitionError, match=r"must be an object schema"):
        _action(input=schema)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (OptionalInput, OptionalInput(count=3)),
        (DataInput, DataInput(count=2)),
        (ExtTypedInput, {}),
    ],
    ids=["basemodel", "dataclass", "typeddict"],
)
def test_object_schemas_are_accepted_and_absent_input_parses_as_empty_object(
    schema: Any, expected: Any
) -> None:
    action = _action(input=schema)
    assert action.input is schema
    assert action.parse_input(UNSET) == expected


def test_stdlib_typeddict_is_accepted_or_refused_as_a_definition_error() -> None:
    # A user's ``typing.TypedDict`` must never surface as a raw pydantic error from define_action.
    try:
        action = _action(input=StdTypedInput)
    except DefinitionError:
        assert sys.version_info < (3, 12)
    else:
        assert action.parse_input({"count": 4}) == {"count": 4}


def test_schemas_are_inferred_from_type_hints() -> None:
    action = define_action(name="hinted", description="d", run=_hinted)
    assert action.input is TextInput
    assert action.output is SummaryOutput


def test_explicit_schemas_override_hints() -> None:
    action = define_action(
        name="hinted", description="d", run=_hinted, input=OptionalInput, output=int
    )
    assert action.input is OptionalInput
    assert action.output is int


def test_explicit_schemas_do_not_resolve_the_hints() -> None:
    # With ``from __future__ import annotations`` a class defined in a function cannot be found
    # from the hints; given explicitly, the schemas must not need them.
    class LocalInput(BaseModel):
        word: str

    class LocalOutput(BaseModel):
        echoed: str

    async def run(ctx: ActionContext[LocalInput]) -> LocalOutput:
        return LocalOutput(echoed=ctx.input.word)

    workflow = define_workflow(agent=AGENT, input=LocalInput, output=LocalOutput, run=run)
    assert workflow.action.input is LocalInput
    assert workflow.action.output is LocalOutput
    assert workflow.action.serialize_output(LocalOutput(echoed="hi")) == {"echoed": "hi"}
    action = define_action(
        name="local", description="d", run=run, input=LocalInput, output=LocalOutput
    )
    assert (action.input, action.output) == (LocalInput, LocalOutput)
    # Leaving one schema to the hints still needs them, and says so.
    with pytest.raises(DefinitionError, match=r"cannot be resolved"):
        define_workflow(agent=AGENT, input=LocalInput, run=run)


@pytest.mark.parametrize("hint", ["none", "any"])
def test_none_or_any_hints_declare_no_schema(hint: str) -> None:
    async def with_none(ctx: ActionContext[None]) -> None:
        return None

    async def with_any(ctx: ActionContext[Any]) -> Any:
        return None

    action = _action(run=with_none if hint == "none" else with_any)
    assert action.input is None
    assert action.output is None


def test_action_definitions_are_frozen() -> None:
    action = _action()
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.name = "other"  # type: ignore[misc]


# --- parse_input ---------------------------------------------------------------------------------


def test_parse_input_absent_with_required_fields_fails_as_empty_object() -> None:
    action = _action(name="needs-text", input=TextInput)
    with pytest.raises(ActionInputValidationError) as caught:
        action.parse_input(UNSET)
    assert caught.value.meta == {
        "action": "needs-text",
        "issues": [{"message": "Field required", "path": ["text"]}],
    }


def test_parse_input_returns_the_validated_model() -> None:
    action = _action(input=TextInput)
    parsed = action.parse_input({"text": "hello"})
    assert isinstance(parsed, TextInput)
    assert parsed.text == "hello"


def test_parse_input_without_schema_and_without_input_gives_none() -> None:
    assert _action().parse_input(UNSET) is None


@pytest.mark.parametrize("value", [{}, None, "text", 0, []], ids=repr)
def test_parse_input_refuses_any_input_to_a_schemaless_action(value: Any) -> None:
    action = _action(name="plain")
    with pytest.raises(WorkflowInputUnexpectedError) as caught:
        action.parse_input(value, workflow="my-flow")
    assert caught.value.type == "workflow_input_unexpected"
    assert caught.value.message == 'Workflow "my-flow" does not accept input.'


def test_parse_input_validation_failure_reports_issues() -> None:
    action = _action(name="summarize-text", input=TextInput)
    with pytest.raises(ActionInputValidationError) as caught:
        action.parse_input({"text": 42})
    error = caught.value
    assert error.type == "action_input_validation"
    assert error.message == 'Action "summarize-text" input does not match the required schema.'
    assert error.meta is not None
    assert error.meta["action"] == "summarize-text"
    issues = error.meta["issues"]
    assert len(issues) == 1
    assert issues[0]["path"] == ["text"]
    assert isinstance(issues[0]["message"], str)
    assert issues[0]["message"]
    assert set(issues[0]) == {"message", "path"}


def test_parse_input_null_is_not_an_object() -> None:
    action = _action(input=OptionalInput)
    with pytest.raises(ActionInputValidationError) as caught:
        action.parse_input(None)
    assert caught.value.meta is not None
    issues = caught.value.meta["issues"]
    assert len(issues) == 1
    assert "path" not in issues[0]


# --- serialize_output ----------------------------------------------------------------------------


def test_serialize_output_with_schema_dumps_json() -> None:
    action = _action(output=SummaryOutput)
    assert action.serialize_output(SummaryOutput(summary="s")) == {"summary": "s"}
    assert action.serialize_output({"summary": "t"}) == {"summary": "t"}


def test_serialize_output_schema_failure() -> None:
    action = _action(name="out", output=SummaryOutput)
    with pytest.raises(ActionOutputValidationError) as caught:
        action.serialize_output({"summary": 1.5})
    error = caught.value
    assert error.type == "action_output_validation"
    assert error.message == 'Action "out" output does not match the required schema.'
    assert error.meta is not None
    assert error.meta["action"] == "out"
    assert [issue["path"] for issue in error.meta["issues"]] == [["summary"]]


def _cycle() -> list[Any]:
    looped: list[Any] = []
    looped.append(looped)
    return looped


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        math.nan,
        {"score": math.inf},
        object(),
        _cycle(),
        {1: "non-string key"},
        [1, object()],
        b"bytes",
    ],
    ids=["set", "nan", "nested-inf", "object", "cycle", "int-key", "nested-object", "bytes"],
)
def test_serialize_output_refuses_non_json_without_schema(value: Any) -> None:
    action = _action(name="raw")
    with pytest.raises(ActionOutputSerializationError) as caught:
        action.serialize_output(value)
    assert caught.value.type == "action_output_serialization"
    assert caught.value.meta == {"action": "raw"}
    assert caught.value.message.startswith('Action "raw" output is not JSON-serializable')


def test_serialize_output_refuses_non_finite_numbers_with_schema() -> None:
    action = _action(name="floaty", output=float)
    with pytest.raises(ActionOutputSerializationError):
        action.serialize_output(math.nan)


def test_serialize_output_none_is_null() -> None:
    assert _action().serialize_output(None) is None


def test_serialize_output_returns_a_deep_copy() -> None:
    value: dict[str, Any] = {"items": [1, 2]}
    result = _action().serialize_output(value)
    value["items"].append(3)
    assert result == {"items": [1, 2]}


# --- define_agent ---------------------------------------------------------------------------------


async def test_define_agent_static_kwargs() -> None:
    agent = define_agent(
        model="anthropic/claude-haiku-4-5",
        instructions="Be brief.",
        thinking_level="low",
        cwd="/project",
    )
    assert isinstance(agent, AgentDefinition)
    config = await _configure(agent)
    assert config.model == "anthropic/claude-haiku-4-5"
    assert config.instructions == "Be brief."
    assert config.thinking_level == "low"
    assert config.cwd == "/project"
    assert config.tools == ()


async def test_define_agent_sync_initializer_receives_context() -> None:
    seen: list[AgentContext] = []

    def initialize(ctx: AgentContext) -> AgentConfig:
        seen.append(ctx)
        return AgentConfig(model="fake/echo", instructions=f"run {ctx.id}")

    config = await _configure(define_agent(initialize), run_id="run_ABC")
    assert config.instructions == "run run_ABC"
    assert [ctx.id for ctx in seen] == ["run_ABC"]


async def test_define_agent_async_initializer_returning_mapping() -> None:
    async def initialize(ctx: AgentContext) -> dict[str, Any]:
        return {"model": "fake/echo", "description": ctx.id}

    config = await _configure(define_agent(initialize), run_id="run_Q")
    assert isinstance(config, AgentConfig)
    assert config.model == "fake/echo"
    assert config.description == "run_Q"


async def test_initializer_unknown_field_is_refused_with_the_field_named() -> None:
    agent = define_agent(lambda ctx: {"model": "fake/echo", "name": "profile-only"})
    with pytest.raises(DefinitionError) as caught:
        await _configure(agent)
    assert str(caught.value) == (
        '[flue] define_agent() initializer returned unknown runtime config field "name".'
    )


async def test_initializer_without_model_is_refused() -> None:
    agent = define_agent(lambda ctx: {"instructions": "no model"})
    with pytest.raises(DefinitionError, match=r"requires a model"):
        await _configure(agent)


async def test_initializer_returning_something_else_is_refused() -> None:
    agent = define_agent(lambda ctx: "fake/echo")  # type: ignore[arg-type,return-value]
    with pytest.raises(DefinitionError, match=r"initializer must return"):
        await _configure(agent)


def test_define_agent_static_unknown_field_is_refused_with_the_field_named() -> None:
    with pytest.raises(DefinitionError, match=r'unknown runtime config field "temperature"'):
        define_agent(model="fake/echo", temperature=0.2)


def test_define_agent_static_without_model_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"requires a model"):
        define_agent(instructions="no model")


def test_define_agent_refuses_initializer_and_kwargs_together() -> None:
    with pytest.raises(DefinitionError):
        define_agent(lambda ctx: {"model": "fake/echo"}, model="fake/echo")


def test_define_agent_initializer_must_be_callable() -> None:
    with pytest.raises(DefinitionError, match=r"must be a function"):
        define_agent("fake/echo")  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["claude-haiku", "anthropic/", "/claude", "", "   "], ids=repr)
def test_agent_config_model_must_be_provider_slash_id(model: str) -> None:
    with pytest.raises(DefinitionError, match=r"'provider/model-id'"):
        AgentConfig(model=model)


@pytest.mark.parametrize("level", ["off", "minimal", "low", "medium", "high", "xhigh"])
def test_agent_config_accepts_every_thinking_level(level: Any) -> None:
    assert AgentConfig(model="fake/echo", thinking_level=level).thinking_level == level


@pytest.mark.parametrize("level", ["max", "HIGH", "", 3])
def test_agent_config_refuses_bad_thinking_levels(level: Any) -> None:
    with pytest.raises(DefinitionError, match=r"thinking_level must be one of"):
        AgentConfig(model="fake/echo", thinking_level=level)


def test_agent_config_refuses_duplicate_tool_names() -> None:
    # Flue's assembleModelTools: a duplicate is a tool_name_conflict, not a bad definition.
    tool = define_tool(name="add", description="Add.", input=AddArgs, run=_add)
    again = define_tool(name="add", description="Add again.", input=AddArgs, run=_add)
    with pytest.raises(
        ToolNameConflictError, match=r'"add" is used by more than one tool'
    ) as caught:
        AgentConfig(model="fake/echo", tools=[tool, again])
    assert caught.value.type == "tool_name_conflict"


def test_a_tool_and_an_action_of_one_name_conflict() -> None:
    tool = define_tool(name="act", description="Act.", input=AddArgs, run=_add)
    with pytest.raises(ToolNameConflictError) as caught:
        define_agent(model="fake/echo", tools=[tool], actions=[_action()])
    assert caught.value.type == "tool_name_conflict"
    with pytest.raises(ToolNameConflictError):
        define_agent(model="fake/echo", actions=[_action(), _action(description="Again.")])


@pytest.mark.parametrize("name", [*BUILTIN_TOOL_NAMES, *sorted(RESERVED_TOOL_NAMES)])
def test_one_tool_name_rule_for_agents_and_profiles(name: str) -> None:
    # A subagent's model gets the built-in tools too: the profile is refused when defined,
    # not mid-run at task(), and for the same reason as the agent.
    tool = define_tool(name=name, description="Mine.", input=AddArgs, run=_add)
    with pytest.raises(ToolNameConflictError) as agent:
        define_agent(model="fake/echo", tools=[tool])
    with pytest.raises(ToolNameConflictError) as profile:
        define_agent_profile(name="helper", tools=[tool])
    with pytest.raises(ToolNameConflictError) as action:
        define_agent(model="fake/echo", actions=[_action(name=name)])
    assert str(agent.value) == str(profile.value) == str(action.value)
    assert f'"{name}" conflicts with' in str(agent.value)


def test_profile_duplicate_tools_conflict() -> None:
    tool = define_tool(name="add", description="Add.", input=AddArgs, run=_add)
    with pytest.raises(ToolNameConflictError):
        define_agent_profile(name="helper", tools=[tool, tool])


# --- define_tool ----------------------------------------------------------------------------------


def test_define_tool_returns_a_tool_definition() -> None:
    tool = define_tool(name=" add ", description="Add two numbers.", input=AddArgs, run=_add)
    assert isinstance(tool, ToolDefinition)
    assert tool.name == "add"
    assert tool.description == "Add two numbers."
    assert tool.input is AddArgs
    assert tool.run is _add


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, r"define_tool\(\{ name \}\) must be a non-empty string"),
        ({"name": "  "}, r"define_tool\(\{ name \}\) must be a non-empty string"),
        ({"description": ""}, r"define_tool\(\{ description \}\) must be a non-empty string"),
        ({"input": dict}, r"must be a pydantic BaseModel class"),
        ({"input": AddArgs(a=1, b=2)}, r"must be a pydantic BaseModel class"),
        ({"input": ExtTypedInput}, r"must be a pydantic BaseModel class"),
        ({"run": lambda args: args}, r"must be an async function"),
    ],
    ids=["empty-name", "blank-name", "empty-description", "dict", "instance", "typeddict", "sync"],
)
def test_define_tool_validation(overrides: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {
        "name": "add",
        "description": "Add two numbers.",
        "input": AddArgs,
        "run": _add,
    }
    options.update(overrides)
    with pytest.raises(DefinitionError, match=message):
        define_tool(**options)


# --- placement (where a workflow's runs execute on Ray) -------------------------------------------


def test_workflows_run_in_a_shared_host_unless_placed() -> None:
    workflow = define_workflow(agent=AGENT, action=_action())
    assert workflow.placement == Placement()
    assert workflow.placement.isolation == "host"


def test_placement_is_given_as_one_value_in_every_form() -> None:
    placement = Placement(isolation="process", num_cpus=1, memory=2**20, resources={"tpu": 1})
    assert (
        define_workflow(agent=AGENT, action=_action(), placement=placement).placement is placement
    )
    assert define_workflow(agent=AGENT, run=_noop, placement=placement).placement is placement
    decorated = define_workflow(agent=AGENT, placement=placement)(_noop)
    assert decorated.placement is placement
    assert actor_options(placement) == {"num_cpus": 1, "memory": 2**20, "resources": {"tpu": 1}}
    assert actor_options(Placement(isolation="process")) == {"num_cpus": 0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"isolation": "thread"}, r"isolation must be 'host' or 'process'"),
        ({"num_cpus": 1}, r"need isolation='process'"),
        ({"isolation": "process", "num_gpus": -1}, r"num_gpus must be a non-negative number"),
        ({"isolation": "process", "memory": True}, r"memory must be a non-negative number"),
    ],
)
def test_placement_validation(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        Placement(**options)


def test_placement_must_be_a_placement() -> None:
    with pytest.raises(DefinitionError, match=r"must be a Placement"):
        define_workflow(agent=AGENT, action=_action(), placement="process")  # type: ignore[call-overload]
