"""``define_action``: a named unit of work with validated input and output. A workflow runs one;
an agent may offer some to its model as tools (``actions=[...]``).

Schemas are pydantic-validatable types (a ``BaseModel``, TypedDict or dataclass for input, any
type for output), given explicitly or read from the type hints of the run function:
``async def run(ctx: ActionContext[SummarizeInput]) -> SummarizeOutput``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, overload

import pydantic
from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticSerializationError
from typing_extensions import is_typeddict

from .._jsonvalue import UNSET, JsonValue, NotJsonError, Unset, snapshot
from ..errors import (
    ActionInputValidationError,
    ActionOutputSerializationError,
    ActionOutputValidationError,
    DefinitionError,
    WorkflowInputUnexpectedError,
)
from ._checks import required_text

if TYPE_CHECKING:
    from .._harness import Harness, RunLog
    from .._records import RunRecord
    from .._runtime import RunReceipt
    from .workflows import WorkflowDefinition

__all__ = [
    "ActionContext",
    "ActionDefinition",
    "ActionRun",
    "check_offered_actions",
    "define_action",
    "make_action",
    "validation_issues",
]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


@dataclass(frozen=True)
class ActionContext(Generic[InputT]):
    """What an action's ``run`` receives. ``input`` is ``None`` when no input schema is declared."""

    harness: Harness
    log: RunLog
    input: InputT

    @overload
    async def invoke(
        self,
        workflow: WorkflowDefinition | str,
        input: Any = UNSET,
        *,
        wait: Literal[False] = False,
    ) -> RunReceipt: ...

    @overload
    async def invoke(
        self, workflow: WorkflowDefinition | str, input: Any = UNSET, *, wait: Literal[True]
    ) -> RunRecord: ...

    async def invoke(
        self, workflow: WorkflowDefinition | str, input: Any = UNSET, *, wait: bool = False
    ) -> RunReceipt | RunRecord:
        """Invoke another workflow from this run: its receipt once admitted, or with
        ``wait=True`` its terminal record. This run's log records the invocation (see
        ``flue_actors.invoke``)."""
        from .._runtime import ambient  # the runtime imports this module

        if wait:
            return await ambient.invoke_and_wait(workflow, input)
        return await ambient.invoke(workflow, input)


ActionRun: TypeAlias = Callable[[ActionContext[Any]], Awaitable[Any]]


def validation_issues(error: pydantic.ValidationError) -> list[dict[str, Any]]:
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
            raise ActionInputValidationError(
                action=self.name, issues=validation_issues(error)
            ) from None

    def serialize_output(self, value: Any) -> JsonValue:
        """The run's result as plain JSON, validated against the output schema if there is one."""
        if self._output_adapter is not None:
            try:
                validated = self._output_adapter.validate_python(value)
            except pydantic.ValidationError as error:
                raise ActionOutputValidationError(
                    action=self.name, issues=validation_issues(error)
                ) from None
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


def check_offered_actions(actions: Sequence[object], where: str) -> None:
    """Refuse what an agent or profile cannot offer its model as tools: anything but a
    ``define_action`` value, or an action whose input is not a pydantic model (the tool's
    arguments are validated with it)."""
    for action in actions:
        if not isinstance(action, ActionDefinition):
            raise DefinitionError(f"[flue] {where} actions must be define_action() values.")
        schema = action.input
        if schema is not None and not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise DefinitionError(
                f'[flue] action "{action.name}" is offered to the model, so its input must be a '
                "pydantic BaseModel (the tool's arguments are validated with it)."
            )


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


def make_action(
    *, name: str, description: str, run: ActionRun, input: Any, output: Any
) -> ActionDefinition[Any, Any]:
    """An action from its parts (``None`` schemas read from ``run``'s type hints)."""
    name = required_text(name, "define_action", "name")
    description = required_text(description, "define_action", "description")
    if not inspect.iscoroutinefunction(run):
        raise DefinitionError("[flue] define_action({ run }) must be an async function.")
    # Hints are read only when a schema is left to them: with both given, the hints may name
    # classes that cannot be resolved from the module (defined inside a function, say).
    if input is None or output is None:
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
        return make_action(name=name, description=description, run=run, input=input, output=output)

    def decorate(fn: ActionRun) -> ActionDefinition[Any, Any]:
        return make_action(name=name, description=description, run=fn, input=input, output=output)

    return decorate
