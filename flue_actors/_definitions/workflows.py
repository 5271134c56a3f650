"""``define_workflow``: an agent bound to the action it runs, and where its runs execute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeAlias, TypeVar, overload

from typing_extensions import TypeVar as DefaultedTypeVar

from ..errors import DefinitionError
from .actions import ActionContext, ActionDefinition, ActionRun, make_action
from .agents import AgentDefinition

__all__ = ["Isolation", "Placement", "Recovery", "WorkflowDefinition", "define_workflow"]

OutputT = TypeVar("OutputT")
# What a workflow's run returns, as its type hints declare it (Any when they don't, or when an
# explicit ``output=`` schema decides): the test kit's RunResult is typed by it.
WorkflowOutputT = DefaultedTypeVar("WorkflowOutputT", default=Any)
_INLINE_ACTION_NAME = "workflow"

Isolation: TypeAlias = Literal["host", "process"]
Recovery: TypeAlias = Literal["resume", "fail"]


@dataclass(frozen=True)
class Placement:
    """Where a workflow's runs execute on Ray.

    ``host`` (the default): in a RunHost shared with many runs. ``process``: in a Ray actor of
    its own, with these resources, ended when the run ends. Runs outside Ray ignore it.
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


@dataclass(frozen=True, eq=False)
class WorkflowDefinition(Generic[WorkflowOutputT]):
    """A workflow: an agent bound to the action it runs. Compared by identity, as in Flue."""

    agent: AgentDefinition
    action: ActionDefinition[Any, WorkflowOutputT]
    placement: Placement = field(default_factory=Placement)
    # What happens to a run whose owner died: "resume" (a new owner replays it from its log and
    # carries on) or "fail" (it ends errored, ``run_interrupted``).
    recovery: Recovery = "resume"


_UNGIVEN: Any = object()


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    action: ActionDefinition[Any, OutputT],
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> WorkflowDefinition[OutputT]: ...


# The inline forms come in pairs: without ``output=``, the workflow's output type is what its
# run function returns; with it, the schema given decides, which the types cannot follow.
@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    run: Callable[[ActionContext[Any]], Awaitable[OutputT]],
    input: Any = None,
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> WorkflowDefinition[OutputT]: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    run: ActionRun,
    output: Any,
    input: Any = None,
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> WorkflowDefinition: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    input: Any = None,
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> Callable[
    [Callable[[ActionContext[Any]], Awaitable[OutputT]]], WorkflowDefinition[OutputT]
]: ...


@overload
def define_workflow(
    *,
    agent: AgentDefinition,
    output: Any,
    input: Any = None,
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> Callable[[ActionRun], WorkflowDefinition]: ...


def define_workflow(
    *,
    agent: AgentDefinition,
    action: ActionDefinition[Any, Any] | None = None,
    run: ActionRun | None = None,
    input: Any = _UNGIVEN,
    output: Any = _UNGIVEN,
    placement: Placement | None = None,
    recovery: Recovery = "resume",
) -> WorkflowDefinition | Callable[[ActionRun], WorkflowDefinition]:
    """A workflow, in one of three forms:

    * ``define_workflow(agent=..., action=some_action)``: run an existing action;
    * ``define_workflow(agent=..., input=..., output=..., run=fn)``: inline;
    * ``@define_workflow(agent=..., ...)`` over ``async def run(ctx)``: inline, as a decorator.

    On Ray, ``placement=Placement(isolation="process", num_cpus=1)`` runs each run in a Ray
    actor of its own with those resources (see :class:`Placement`).

    ``recovery="resume"`` (the default): a run whose owner dies is taken over by another and
    replayed from its log (see the README, "Durable runs"); ``"fail"``: it ends errored with
    ``run_interrupted``.
    """
    if recovery not in ("resume", "fail"):
        raise DefinitionError(f"[flue] recovery must be 'resume' or 'fail', got {recovery!r}.")
    if placement is None:
        placement = Placement()
    elif not isinstance(placement, Placement):
        raise DefinitionError("[flue] define_workflow({ placement }) must be a Placement.")
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
        return WorkflowDefinition(
            agent=agent, action=action, placement=placement, recovery=recovery
        )

    def inline(fn: ActionRun) -> WorkflowDefinition:
        private = make_action(
            name=_INLINE_ACTION_NAME,
            description="Workflow-private action.",
            run=fn,
            input=None if input is _UNGIVEN else input,
            output=None if output is _UNGIVEN else output,
        )
        return WorkflowDefinition(
            agent=agent, action=private, placement=placement, recovery=recovery
        )

    if run is not None:
        return inline(run)
    return inline
