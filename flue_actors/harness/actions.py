"""Actions offered to the model as tools (an agent's ``actions=[...]``).

As in Flue, the tool is named after the action and takes the action's input; each call runs the
action in a scope of its own (harness ``action:<invocationId>``, its own sessions) on the run's
sandbox, and the action's validated output is the tool's result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..definitions import ActionContext, ActionDefinition, ToolDefinition
from ..errors import DefinitionError
from ..jsonvalue import UNSET
from .log import RunLog

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["action_tool"]


class _NoInput(BaseModel):
    """The arguments of an action that takes no input."""


def action_tool(harness: Harness, action: ActionDefinition[Any, Any]) -> ToolDefinition:
    schema = action.input
    if schema is not None and not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise DefinitionError(
            f'[flue] action "{action.name}" is offered to the model, so its input must be a '
            "pydantic BaseModel (the tool's arguments are validated with it)."
        )
    arguments: type[BaseModel] = schema or _NoInput

    async def run(args: BaseModel) -> Any:
        value = args.model_dump(mode="json") if schema is not None else UNSET
        scope = harness.child(f"action:{harness.new_invocation_id()}")
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
