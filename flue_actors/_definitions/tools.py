"""``define_tool``, and the one rule for the names of the tools an agent gives its model.

Every list of model tools is checked by :func:`check_tool_names`: an agent's config, a subagent
profile, a harness's tool box and a call's ``tools=``, so a name refused in one is refused in all
and a mistake fails when the agent is defined, not mid-run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel

from .._mcp import MCPTools
from ..errors import DefinitionError, ToolNameConflictError
from ._checks import required_text

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "RESERVED_TOOL_NAMES",
    "ToolDefinition",
    "check_tool_names",
    "define_tool",
    "own_tool_names",
]

# The workspace tools every agent's model gets (flue_actors._harness.workspace_tools).
BUILTIN_TOOL_NAMES = ("read", "write", "edit", "bash", "grep", "glob")
# Tool names the harness gives the model itself (Flue's assembleModelTools): a user tool with
# one of these names would shadow the framework's and break skills, tasks or results.
RESERVED_TOOL_NAMES = frozenset(
    {"task", "activate_skill", "read_skill_resource", "finish", "give_up"}
)


def check_tool_names(names: Iterable[str]) -> None:
    """Refuse (``tool_name_conflict``) a list of an agent's own model tools (its tools, actions
    and a call's ``tools=``) in which a name is a built-in workspace tool's, a framework tool's,
    or used twice: the model could not say which tool it means."""
    seen: set[str] = set()
    for name in names:
        if name in BUILTIN_TOOL_NAMES:
            raise ToolNameConflictError(name=name, reason="a built-in workspace tool")
        if name in RESERVED_TOOL_NAMES:
            raise ToolNameConflictError(name=name, reason="a framework tool")
        if name in seen:
            raise ToolNameConflictError(name=name)
        seen.add(name)


def own_tool_names(tools: Iterable[ToolDefinition | MCPTools]) -> list[str]:
    """The names of the ``define_tool`` tools among ``tools``, for :func:`check_tool_names`.
    An MCP server's tools are named ``mcp__<server>__<tool>`` and known only once the run
    connects; what can be checked now is that no two servers give their tools one prefix."""
    prefixes: set[str] = set()
    names: list[str] = []
    for tool in tools:
        if isinstance(tool, MCPTools):
            if tool.prefix in prefixes:
                raise ToolNameConflictError(
                    name=tool.prefix + "*", reason="another MCP server's tools"
                )
            prefixes.add(tool.prefix)
        else:
            names.append(tool.name)
    return names


@dataclass(frozen=True, eq=False)
class ToolDefinition:
    """A function the model may call. The harness validates arguments against ``input``."""

    name: str
    description: str
    input: type[BaseModel]
    run: Callable[..., Awaitable[Any]]
    output: Any = None
    # When a resumed run replays this tool's call: False (tools of an agent) takes the result
    # from the log and does not run it again; True runs it again, for the built-in tools whose
    # only effect is on the run's own sandbox (rebuilt by the replay) and for actions (whose
    # own operations are answered from the log one by one).
    rerun_on_replay: bool = False


def define_tool(
    *,
    name: str,
    description: str,
    input: type[BaseModel],
    run: Callable[..., Awaitable[Any]],
    output: Any = None,
) -> ToolDefinition:
    name = required_text(name, "define_tool", "name")
    description = required_text(description, "define_tool", "description")
    if not (isinstance(input, type) and issubclass(input, BaseModel)):
        raise DefinitionError("[flue] define_tool({ input }) must be a pydantic BaseModel class.")
    if not inspect.iscoroutinefunction(run):
        raise DefinitionError("[flue] define_tool({ run }) must be an async function.")
    if output is not None:
        try:
            pydantic.TypeAdapter(output)
        except (pydantic.PydanticSchemaGenerationError, TypeError) as error:
            raise DefinitionError(
                f"[flue] define_tool({{ output }}) must be a type pydantic can validate: {error}"
            ) from None
    return ToolDefinition(name=name, description=description, input=input, run=run, output=output)
