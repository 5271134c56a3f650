"""Tasks (reference 1.5): delegating a prompt to a detached child session.

The child is named ``task:<parentSession>:<taskId>``, is not reachable through
``harness.sessions``, speaks as the chosen subagent profile (or as the parent's agent) and runs
one level deeper in delegation. ``task_start`` / ``task`` bracket it in the parent's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._definitions import AgentProfile, ToolDefinition
from .._messages import ImageContent
from .._observation import TaskExecution, context_of, intercept
from ..errors import DelegationDepthExceededError, SubagentNotDeclaredError
from ..models import ThinkingLevel
from .agent_loop import run_prompt
from .framework import FrameworkTool, ToolFailure
from .outcomes import Outcome
from .payloads import (
    Correlation,
    TaskAgent,
    TaskCwd,
    TaskLineage,
    TurnCorrelation,
    correlation_of_turn,
)
from .scope import MAX_DELEGATION_DEPTH

if TYPE_CHECKING:
    from .results import ResultSpec
    from .session_state import SessionState

__all__ = ["TaskPlan", "plan_task", "run_task", "task_tool"]


class TaskPlan:
    """A task checked and ready to run: its child session and the subagent it speaks as."""

    def __init__(
        self, child: SessionState, task_id: str, profile: AgentProfile | None, cwd: str | None
    ) -> None:
        self.child = child
        self.task_id = task_id
        self.profile = profile
        # As the caller gave it (task_start shows it so); the child works in it resolved.
        self.cwd = cwd


def plan_task(
    parent: SessionState,
    agent: str | None,
    *,
    model: str | None,
    thinking_level: ThinkingLevel | None,
    cwd: str | None = None,
) -> TaskPlan:
    """Check the delegation (unknown subagent, depth) and make the child session."""
    scope = parent.scope
    profile = None
    if agent is not None:
        profile = scope.subagents.get(agent)
        if profile is None:
            raise SubagentNotDeclaredError(name=agent, available=list(scope.subagents))
    if scope.depth >= MAX_DELEGATION_DEPTH:
        raise DelegationDepthExceededError(limit=MAX_DELEGATION_DEPTH)
    child_scope = scope.delegate(
        profile,
        model=model,
        thinking_level=thinking_level,
        harness=parent.harness,
        cwd=cwd,
    )
    task_id = parent.services.ids.uuid()
    child = parent.spawn(f"task:{parent.name}:{task_id}", child_scope, task_id)
    return TaskPlan(child, task_id, profile, cwd)


async def run_task(
    parent: SessionState,
    plan: TaskPlan,
    correlation: Correlation,
    text: str,
    *,
    images: list[ImageContent],
    result: ResultSpec | None,
    tools: Sequence[ToolDefinition] = (),
) -> Outcome:
    """Run the child's prompt between ``task_start`` and ``task`` events."""
    child = plan.child
    emit, clock = parent.services.emit, parent.services.clock
    named: TaskAgent = {"agent": plan.profile.name} if plan.profile is not None else {}
    lineage: TaskLineage = {
        "parentSession": parent.name,
        "session": child.name,
        "conversationId": child.conversation_id,
    }
    where: TaskCwd = {"cwd": plan.cwd} if plan.cwd is not None else {}
    emit(
        "task_start",
        {**correlation, "taskId": plan.task_id, "prompt": text, **named, **where, **lineage},
    )
    started = clock.now_ms()
    child_correlation = child.correlation()
    if "operationId" in correlation:
        child_correlation["operationId"] = correlation["operationId"]
    try:
        outcome = await intercept(
            TaskExecution(plan.task_id, plan.profile.name if plan.profile else None),
            context_of(parent.run_id, {**correlation, "taskId": plan.task_id}),
            lambda: run_prompt(
                child,
                child_correlation,
                text,
                model=None,
                thinking_level=None,
                images=images,
                spec=result,
                tools=tools,
            ),
        )
    except BaseException as error:
        emit(
            "task",
            {
                **correlation,
                "taskId": plan.task_id,
                **named,
                "isError": True,
                "result": str(error),
                "durationMs": clock.now_ms() - started,
                **lineage,
            },
        )
        raise
    emit(
        "task",
        {
            **correlation,
            "taskId": plan.task_id,
            **named,
            "isError": False,
            "result": outcome.text,
            "durationMs": clock.now_ms() - started,
            **lineage,
        },
    )
    return outcome


def task_tool(
    session: SessionState, call_tools: Sequence[ToolDefinition] = ()
) -> dict[str, FrameworkTool]:
    """The model's ``task`` tool, when the agent declares subagents. The call's own tools
    (``call_tools``) go to a task without a subagent only: a profile is self-contained."""
    subagents = session.scope.subagents
    if not subagents:
        return {}

    async def run(arguments: dict[str, Any], turn: TurnCorrelation) -> str:
        prompt, agent = arguments.get("prompt"), arguments.get("agent")
        if not isinstance(prompt, str) or not prompt:
            raise ToolFailure('Invalid arguments: "prompt" must be a non-empty string.')
        if agent is not None and not isinstance(agent, str):
            raise ToolFailure('Invalid arguments: "agent" must be a string.')
        cwd = arguments.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ToolFailure('Invalid arguments: "cwd" must be a string.')
        plan = plan_task(session, agent, model=None, thinking_level=None, cwd=cwd)
        correlation = correlation_of_turn(turn)
        outcome = await run_task(
            session,
            plan,
            correlation,
            prompt,
            images=[],
            result=None,
            tools=call_tools if agent is None else (),
        )
        return outcome.text

    listing = "; ".join(
        f"{profile.name}: {profile.instructions or 'no instructions'}"
        for profile in subagents.values()
    )
    return {
        "task": FrameworkTool(
            "task",
            f"Delegate a self-contained task to a subagent and get its answer. "
            f"Subagents: {listing}",
            {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string"},
                    "agent": {"type": "string", "enum": list(subagents)},
                    "cwd": {"type": "string"},
                },
                "required": ["prompt"],
            },
            run,
        )
    }
