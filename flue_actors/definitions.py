"""``define_workflow``, ``define_action``, ``define_agent`` and ``define_tool``.

Definitions are immutable values made at import time. Schemas are pydantic-validatable types
(a ``BaseModel`` for input, any type for output), given explicitly or read from the type hints of
the run function: ``async def run(ctx: ActionContext[SummarizeInput]) -> SummarizeOutput``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, overload

import pydantic
from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticSerializationError
from typing_extensions import TypeVar as DefaultedTypeVar
from typing_extensions import is_typeddict

from .capabilities import RESERVED_TOOL_NAMES, AgentProfile, SkillDefinition, check_tool_names
from .errors import (
    ActionInputValidationError,
    ActionOutputSerializationError,
    ActionOutputValidationError,
    DefinitionError,
    ToolNameConflictError,
    WorkflowInputUnexpectedError,
)
from .jsonvalue import UNSET, JsonValue, NotJsonError, Unset, snapshot

if TYPE_CHECKING:
    from .harness import Harness, RunLog
    from .harness.sandbox import SandboxFactory

__all__ = [
    "ActionContext",
    "ActionDefinition",
    "AgentConfig",
    "AgentContext",
    "AgentDefinition",
    "CompactionConfig",
    "Isolation",
    "Placement",
    "ThinkingLevel",
    "ToolDefinition",
    "WorkflowDefinition",
    "define_action",
    "define_agent",
    "define_tool",
    "define_workflow",
]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")
# What a workflow's run returns, as its type hints declare it (Any when they don't, or when an
# explicit ``output=`` schema decides): the test kit's RunResult is typed by it.
WorkflowOutputT = DefaultedTypeVar("WorkflowOutputT", default=Any)
ThinkingLevel: TypeAlias = Literal["off", "minimal", "low", "medium", "high", "xhigh"]
_THINKING_LEVELS = typing.get_args(ThinkingLevel)
_INLINE_ACTION_NAME = "workflow"
# The workspace tools every agent's model gets (flue_actors.harness.workspace_tools); an
# agent's own tools may not reuse these names.
BUILTIN_TOOL_NAMES = ("read", "write", "edit", "bash", "grep", "glob")


@dataclass(frozen=True)
class ActionContext(Generic[InputT]):
    """What an action's ``run`` receives. ``input`` is ``None`` when no input schema is declared."""

    harness: Harness
    log: RunLog
    input: InputT


ActionRun: TypeAlias = Callable[[ActionContext[Any]], Awaitable[Any]]


# --- Tools ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ToolDefinition:
    """A function the model may call. The harness validates arguments against ``input``."""

    name: str
    description: str
    input: type[BaseModel]
    run: Callable[..., Awaitable[Any]]
    output: Any = None


def define_tool(
    *,
    name: str,
    description: str,
    input: type[BaseModel],
    run: Callable[..., Awaitable[Any]],
    output: Any = None,
) -> ToolDefinition:
    name = _required_text(name, "define_tool", "name")
    description = _required_text(description, "define_tool", "description")
    if not (isinstance(input, type) and issubclass(input, BaseModel)):
        raise DefinitionError("[flue] define_tool({ input }) must be a pydantic BaseModel class.")
    if not inspect.iscoroutinefunction(run):
        raise DefinitionError("[flue] define_tool({ run }) must be an async function.")
    return ToolDefinition(name=name, description=description, input=input, run=run, output=output)


# --- Agents -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompactionConfig:
    """How an agent's conversations are compacted when they near the model's context window
    (Flue's ``compaction`` config). Each field left ``None`` takes the default derived from the
    model: ``reserve_tokens`` is the headroom kept free below the window (20,000, at most the
    model's output limit), ``keep_recent_tokens`` how much of the latest conversation stays
    verbatim (8,000), ``model`` the ``provider/model`` that writes the summary (the agent's)."""

    reserve_tokens: int | None = None
    keep_recent_tokens: int | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        for name in ("reserve_tokens", "keep_recent_tokens"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise DefinitionError(
                    f"[flue] compaction.{name} must be a non-negative integer, got {value!r}."
                )
        if self.model is not None and (
            not isinstance(self.model, str) or "/" not in self.model.strip("/")
        ):
            raise DefinitionError(
                "[flue] compaction.model must be written as 'provider/model-id', "
                f"got {self.model!r}."
            )

    @classmethod
    def of(cls, value: object) -> CompactionConfig | Literal[False] | None:
        """``value`` as an agent's compaction setting: ``None`` (the defaults), ``False`` (no
        automatic compaction), a :class:`CompactionConfig` or a mapping of its fields."""
        if value is None or value is False or isinstance(value, CompactionConfig):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            for key in value:
                if key not in known:
                    raise DefinitionError(f'[flue] compaction received unknown field "{key}".')
            return cls(**value)
        raise DefinitionError(
            "[flue] compaction must be False, a CompactionConfig or a mapping of its fields, "
            f"got {value!r}."
        )


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """The runtime configuration an agent initializer returns."""

    model: str
    instructions: str | None = None
    description: str | None = None
    thinking_level: ThinkingLevel | None = None
    tools: Sequence[ToolDefinition] = ()
    skills: Sequence[SkillDefinition] = ()
    subagents: Sequence[AgentProfile] = ()
    # Actions the model may call as tools, each run in a scope of its own on the run's sandbox.
    actions: Sequence[ActionDefinition[Any, Any]] = ()
    cwd: str | None = None
    # Where files live and commands run: "virtual" (in memory, the default), "local" (a
    # temporary host directory; trusted use only) or a factory returning a Sandbox.
    sandbox: Literal["virtual", "local"] | SandboxFactory = "virtual"
    # Automatic compaction: None for the defaults, False for none (session.compact() still
    # works), a CompactionConfig (or a mapping of its fields) to tune it.
    compaction: CompactionConfig | Literal[False] | None = None

    def __post_init__(self) -> None:
        # A mapping is accepted as Flue's object literal is; it is stored as the typed value.
        object.__setattr__(self, "compaction", CompactionConfig.of(self.compaction))
        if not isinstance(self.model, str) or "/" not in self.model.strip("/"):
            raise DefinitionError(
                "[flue] define_agent() requires a model written as 'provider/model-id' "
                f"(for example 'anthropic/claude-haiku-4-5'), got {self.model!r}."
            )
        if self.thinking_level is not None and self.thinking_level not in _THINKING_LEVELS:
            raise DefinitionError(
                f"[flue] thinking_level must be one of {', '.join(_THINKING_LEVELS)}, "
                f"got {self.thinking_level!r}."
            )
        if self.sandbox not in ("virtual", "local") and not callable(self.sandbox):
            raise DefinitionError(
                "[flue] sandbox must be 'virtual', 'local' or a function returning a Sandbox, "
                f"got {self.sandbox!r}."
            )
        for action in self.actions:
            if not isinstance(action, ActionDefinition):
                raise DefinitionError(
                    "[flue] define_agent() actions must be define_action() values."
                )
        names = [tool.name for tool in self.tools] + [action.name for action in self.actions]
        for name in names:
            if name in BUILTIN_TOOL_NAMES:
                raise ToolNameConflictError(name=name)
            if name in RESERVED_TOOL_NAMES:
                raise ToolNameConflictError(name=name, reason="a framework tool")
        if len(names) != len(set(names)):
            raise DefinitionError(
                "[flue] define_agent() tools and actions must not contain duplicate tool names."
            )
        check_tool_names(self.tools)
        for kind, items in (("skill", self.skills), ("subagent", self.subagents)):
            named = [item.name for item in items]
            if len(named) != len(set(named)):
                raise DefinitionError(
                    f"[flue] define_agent() {kind}s must not contain duplicate {kind} names."
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AgentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise DefinitionError(
                    "[flue] define_agent() initializer returned unknown runtime config field "
                    f'"{key}".'
                )
        if "model" not in values:
            raise DefinitionError("[flue] define_agent() requires a model.")
        return cls(**values)


@dataclass(frozen=True)
class AgentContext:
    """What an agent initializer receives: for workflows, ``id`` is the run id."""

    id: str
    env: Mapping[str, str]


AgentInitializer: TypeAlias = Callable[
    [AgentContext], "AgentConfig | Mapping[str, Any] | Awaitable[AgentConfig | Mapping[str, Any]]"
]


@dataclass(frozen=True, eq=False)
class AgentDefinition:
    initialize: AgentInitializer

    async def configure(self, context: AgentContext) -> AgentConfig:
        """Call the initializer (once per run) and validate what it returns."""
        config = self.initialize(context)
        if inspect.isawaitable(config):
            config = await config
        if isinstance(config, AgentConfig):
            return config
        if isinstance(config, Mapping):
            return AgentConfig.from_mapping(config)
        raise DefinitionError(
            "[flue] define_agent() initializer must return an AgentConfig "
            "or a mapping of its fields."
        )


def define_agent(initialize: AgentInitializer | None = None, /, **config: Any) -> AgentDefinition:
    """An agent: either a static config (``define_agent(model=...)``) or an initializer function
    called once per run with :class:`AgentContext` (``define_agent(lambda ctx: AgentConfig(...))``).
    """
    if initialize is not None:
        if config:
            raise DefinitionError(
                "[flue] define_agent() takes an initializer or config fields, not both."
            )
        if not callable(initialize):
            raise DefinitionError("[flue] define_agent() initializer must be a function.")
        return AgentDefinition(initialize=initialize)
    static = AgentConfig.from_mapping(config)
    return AgentDefinition(initialize=lambda _context: static)


# --- Actions ----------------------------------------------------------------------------------


def _required_text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"[flue] {where}({{ {key} }}) must be a non-empty string.")
    return value.strip()


def _issues(error: pydantic.ValidationError) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    for item in error.errors(include_url=False, include_input=False):
        issue: dict[str, Any] = {"message": item["msg"]}
        if item["loc"]:
            issue["path"] = list(item["loc"])
        issues.append(issue)
    return issues


def _is_object_schema(schema: Any) -> bool:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return True
    if is_typeddict(schema):
        return True
    return dataclasses.is_dataclass(schema) and isinstance(schema, type)


@dataclass(frozen=True, eq=False)
class ActionDefinition(Generic[InputT, OutputT]):
    """A named unit of work with validated input and output. Workflows run one."""

    name: str
    description: str
    run: ActionRun
    input: Any = None
    output: Any = None
    _input_adapter: TypeAdapter[Any] | None = field(default=None, repr=False)
    _output_adapter: TypeAdapter[Any] | None = field(default=None, repr=False)

    def parse_input(self, value: JsonValue | Unset, *, workflow: str | None = None) -> Any:
        """Validate run input: absent input means ``{}`` when a schema exists; input given to an
        action without a schema is refused."""
        if self._input_adapter is None:
            if value is not UNSET:
                raise WorkflowInputUnexpectedError(workflow=workflow or self.name)
            return None
        try:
            return self._input_adapter.validate_python({} if value is UNSET else value)
        except pydantic.ValidationError as error:
            raise ActionInputValidationError(action=self.name, issues=_issues(error)) from None

    def serialize_output(self, value: Any) -> JsonValue:
        """The run's result as plain JSON, validated against the output schema if there is one."""
        if self._output_adapter is not None:
            try:
                validated = self._output_adapter.validate_python(value)
            except pydantic.ValidationError as error:
                raise ActionOutputValidationError(action=self.name, issues=_issues(error)) from None
            try:
                value = self._output_adapter.dump_python(validated, mode="json")
            except (PydanticSerializationError, ValueError) as error:
                raise ActionOutputSerializationError(action=self.name, reason=str(error)) from None
        try:
            return snapshot(value, where="result")
        except NotJsonError as error:
            raise ActionOutputSerializationError(action=self.name, reason=str(error)) from None

    def parse_output(self, value: JsonValue) -> OutputT:
        """A result that :meth:`serialize_output` wrote, validated back into the output schema
        (the JSON itself when the action has none)."""
        if self._output_adapter is None:
            return typing.cast(OutputT, value)
        return typing.cast(OutputT, self._output_adapter.validate_python(value))


def _hinted_schemas(run: Callable[..., Any]) -> tuple[Any, Any]:
    """(input, output) read from ``run(ctx: ActionContext[In]) -> Out`` type hints."""
    try:
        hints = typing.get_type_hints(run)
    except Exception as error:
        raise DefinitionError(
            f"[flue] the type hints of {getattr(run, '__qualname__', run)!r} cannot be resolved "
            f"({error}); define the schemas at module level or pass input= and output= explicitly."
        ) from None
    params = list(inspect.signature(run).parameters)
    input_schema = None
    if params and params[0] in hints:
        args = typing.get_args(hints[params[0]])
        if typing.get_origin(hints[params[0]]) is ActionContext and args:
            input_schema = None if args[0] in (None, type(None), Any) else args[0]
    output_schema = hints.get("return")
    if output_schema in (None, type(None), Any):
        output_schema = None
    return input_schema, output_schema


def _make_action(
    *, name: str, description: str, run: ActionRun, input: Any, output: Any
) -> ActionDefinition[Any, Any]:
    name = _required_text(name, "define_action", "name")
    description = _required_text(description, "define_action", "description")
    if not inspect.iscoroutinefunction(run):
        raise DefinitionError("[flue] define_action({ run }) must be an async function.")
    hinted_input, hinted_output = _hinted_schemas(run)
    input = input if input is not None else hinted_input
    output = output if output is not None else hinted_output
    if input is not None and not _is_object_schema(input):
        raise DefinitionError(
            "[flue] define_action({ input }) must be an object schema "
            "(a pydantic BaseModel, a TypedDict or a dataclass)."
        )
    try:
        input_adapter = TypeAdapter(input) if input is not None else None
        output_adapter = TypeAdapter(output) if output is not None else None
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as error:
        raise DefinitionError(f"[flue] define_action() schema is not usable: {error}") from None
    return ActionDefinition(
        name=name,
        description=description,
        run=run,
        input=input,
        output=output,
        _input_adapter=input_adapter,
        _output_adapter=output_adapter,
    )


@overload
def define_action(
    *, name: str, description: str, run: ActionRun, input: Any = None, output: Any = None
) -> ActionDefinition[Any, Any]: ...


@overload
def define_action(
    *, name: str, description: str, input: Any = None, output: Any = None
) -> Callable[[ActionRun], ActionDefinition[Any, Any]]: ...


def define_action(
    *,
    name: str,
    description: str,
    run: ActionRun | None = None,
    input: Any = None,
    output: Any = None,
) -> ActionDefinition[Any, Any] | Callable[[ActionRun], ActionDefinition[Any, Any]]:
    """An action, given ``run=`` or used as a decorator over ``async def run(ctx)``."""
    if run is not None:
        return _make_action(name=name, description=description, run=run, input=input, output=output)

    def decorate(fn: ActionRun) -> ActionDefinition[Any, Any]:
        return _make_action(name=name, description=description, run=fn, input=input, output=output)

    return decorate


# --- Workflows --------------------------------------------------------------------------------


Isolation: TypeAlias = Literal["host", "process"]


@dataclass(frozen=True)
class Placement:
    """Where a workflow's runs execute on Ray.

    ``host`` (the default): in a RunHost shared with many runs. ``process``: in a Ray actor of
    its own, with these resources, ended when the run ends.
    """

    isolation: Isolation = "host"
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None
    resources: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.isolation not in ("host", "process"):
            raise DefinitionError(
                f"[flue] isolation must be 'host' or 'process', got {self.isolation!r}."
            )
        amounts = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "memory": self.memory}
        amounts.update(self.resources or {})
        given = {name: value for name, value in amounts.items() if value is not None}
        if given and self.isolation != "process":
            raise DefinitionError(
                "[flue] num_cpus, num_gpus, memory and resources need isolation='process'."
            )
        for name, value in given.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise DefinitionError(f"[flue] {name} must be a non-negative number.")

    def actor_options(self) -> dict[str, Any]:
        """The Ray actor options of a dedicated run actor."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus or 0}
        if self.num_gpus is not None:
            options["num_gpus"] = self.num_gpus
        if self.memory is not None:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


@dataclass(frozen=True, eq=False)
class WorkflowDefinition(Generic[WorkflowOutputT]):
    """A workflow: an agent bound to the action it runs. Compared by identity, as in Flue."""

    agent: AgentDefinition
    action: ActionDefinition[Any, WorkflowOutputT]
    placement: Placement = field(default_factory=Placement)


_UNGIVEN: Any = object()


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    action: ActionDefinition[Any, OutputT],
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> WorkflowDefinition[OutputT]: ...


# The inline forms come in pairs: without ``output=``, the workflow's output type is what its
# run function returns; with it, the schema given decides, which the types cannot follow.
@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    run: Callable[[ActionContext[Any]], Awaitable[OutputT]],
    input: Any = None,
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> WorkflowDefinition[OutputT]: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    run: ActionRun,
    output: Any,
    input: Any = None,
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> WorkflowDefinition: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    input: Any = None,
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> Callable[
    [Callable[[ActionContext[Any]], Awaitable[OutputT]]], WorkflowDefinition[OutputT]
]: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    output: Any,
    input: Any = None,
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> Callable[[ActionRun], WorkflowDefinition]: ...


def define_workflow(
    *,
    agent: AgentDefinition,
    action: ActionDefinition[Any, Any] | None = None,
    run: ActionRun | None = None,
    input: Any = _UNGIVEN,
    output: Any = _UNGIVEN,
    isolation: Isolation = "host",
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> WorkflowDefinition | Callable[[ActionRun], WorkflowDefinition]:
    """A workflow, in one of three forms:

    * ``define_workflow(agent=..., action=some_action)``: run an existing action;
    * ``define_workflow(agent=..., input=..., output=..., run=fn)``: inline;
    * ``@define_workflow(agent=..., ...)`` over ``async def run(ctx)``: inline, as a decorator.

    On Ray, ``isolation="process"`` runs each run in a Ray actor of its own with ``num_cpus``,
    ``num_gpus``, ``memory`` and ``resources`` (see :class:`Placement`).
    """
    placement = Placement(isolation, num_cpus, num_gpus, memory, resources)
    if not isinstance(agent, AgentDefinition):
        raise DefinitionError("[flue] define_workflow({ agent }) must be a define_agent() value.")
    if action is not None:
        if run is not None:
            raise DefinitionError("[flue] define_workflow() requires exactly one of action or run.")
        if input is not _UNGIVEN or output is not _UNGIVEN:
            raise DefinitionError(
                "[flue] define_workflow({ action }) does not accept input or output."
            )
        if not isinstance(action, ActionDefinition):
            raise DefinitionError(
                "[flue] define_workflow({ action }) must be a define_action() value."
            )
        return WorkflowDefinition(agent=agent, action=action, placement=placement)

    def inline(fn: ActionRun) -> WorkflowDefinition:
        private = _make_action(
            name=_INLINE_ACTION_NAME,
            description="Workflow-private action.",
            run=fn,
            input=None if input is _UNGIVEN else input,
            output=None if output is _UNGIVEN else output,
        )
        return WorkflowDefinition(agent=agent, action=private, placement=placement)

    if run is not None:
        return inline(run)
    return inline
