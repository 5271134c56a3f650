"""Actions offered to the model as tools (an agent's ``actions=[...]``).

As in Flue, the tool is named after the action and takes the action's input; each call runs the
action in a scope of its own (harness ``action:<invocationId>``, its own sessions) on the run's
sandbox, and the action's validated output is the tool's result. A call counts toward the
delegation depth as a task does: the action's sessions are one level deeper than the caller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._definitions import ActionContext, ActionDefinition, ToolDefinition
from .._jsonvalue import UNSET
from ..errors import DelegationDepthExceededError
from .log import RunLog
from .scope import MAX_DELEGATION_DEPTH

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["action_tool"]


class _NoInput(BaseModel):
    """The arguments of an action that takes no input."""


def action_tool(
    harness: Harness, action: ActionDefinition[Any, Any], *, depth: int
) -> ToolDefinition:
    """``action`` as a tool of sessions at delegation ``depth`` in ``harness``."""
    # A pydantic model or None: the agent's definition refused anything else.
    schema: type[BaseModel] | None = action.input
    arguments: type[BaseModel] = schema or _NoInput

    async def run(args: BaseModel) -> Any:
        if depth >= MAX_DELEGATION_DEPTH:
            raise DelegationDepthExceededError(limit=MAX_DELEGATION_DEPTH)
        value = args.model_dump(mode="json") if schema is not None else UNSET
        scope = harness.child(f"action:{harness.new_invocation_id()}", depth=depth + 1)
        try:
            result = await action.run(
                ActionContext(
                    harness=scope,
                    log=RunLog(harness.sink),
                    input=action.parse_input(value),
                )
            )
        finally:
            await scope.close()
        return action.serialize_output(result)

    return ToolDefinition(
        name=action.name,
        description=action.description,
        input=arguments,
        run=run,
        rerun_on_replay=True,
    )
