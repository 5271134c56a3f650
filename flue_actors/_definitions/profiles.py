"""``define_agent_profile``: a reusable agent behaviour, either a subagent that
``session.task(agent=...)`` delegates to or the baseline of an agent (``profile=``).

Profiles are plain immutable values, validated when made, so a mistake (a tool named like a
built-in, a cycle of subagents) fails at import time and not mid-run at ``task()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._mcp import MCPTools
from ..errors import DefinitionError
from ._checks import check_model, check_thinking_level, required_text
from .actions import ActionDefinition, check_offered_actions
from .compaction import CompactionConfig
from .skills import SkillDefinition
from .tools import ToolDefinition, check_tool_names, own_tool_names

if TYPE_CHECKING:
    from ..models._base import ThinkingLevel

__all__ = ["AgentProfile", "define_agent_profile"]


@dataclass(frozen=True, eq=False)
class AgentProfile:
    """A subagent. Instructions, tools, actions, skills and subagents come only from the
    profile; an omitted ``model`` or ``thinking_level`` falls back to the delegating
    session's, an omitted ``cwd`` to the task's (or the delegating session's).

    As an agent's baseline (``define_agent(profile=...)``), the agent's own fields win and its
    tools, actions, skills and subagents come after the profile's."""

    name: str
    instructions: str | None = None
    model: str | None = None
    tools: Sequence[ToolDefinition | MCPTools] = ()
    skills: Sequence[SkillDefinition] = ()
    subagents: Sequence[AgentProfile] = ()
    description: str | None = None
    thinking_level: ThinkingLevel | None = None
    actions: Sequence[ActionDefinition[Any, Any]] = ()
    # None: the agent's (as a baseline) or the delegating session's (as a subagent).
    compaction: CompactionConfig | Literal[False] | None = None
    # The working directory of a task speaking as this profile (relative paths resolve
    # against the delegating session's); not a Flue profile field.
    cwd: str | None = None


def _unique(names: Sequence[str], kind: str) -> None:
    if len(names) != len(set(names)):
        raise DefinitionError(
            f"[flue] define_agent_profile() must not contain duplicate {kind} name."
        )


def define_agent_profile(
    *,
    name: str,
    instructions: str | None = None,
    model: str | None = None,
    tools: Sequence[ToolDefinition | MCPTools] = (),
    skills: Sequence[SkillDefinition] = (),
    subagents: Sequence[AgentProfile] = (),
    description: str | None = None,
    thinking_level: ThinkingLevel | None = None,
    actions: Sequence[ActionDefinition[Any, Any]] = (),
    compaction: CompactionConfig | Literal[False] | Mapping[str, Any] | None = None,
    cwd: str | None = None,
) -> AgentProfile:
    name = required_text(name, "define_agent_profile", "name")
    if model is not None:
        check_model(model, "define_agent_profile()")
    check_thinking_level(thinking_level)
    if cwd is not None:
        cwd = required_text(cwd, "define_agent_profile", "cwd")
    tools, skills, subagents = tuple(tools), tuple(skills), tuple(subagents)
    actions = tuple(actions)
    check_offered_actions(actions, "define_agent_profile()")
    # The same rule as an agent's own tools: a subagent's model gets the built-in workspace
    # tools too, so a tool named "read" could never be called (Flue refuses it at task()).
    check_tool_names(own_tool_names(tools) + [action.name for action in actions])
    _unique([skill.name for skill in skills], "skill")
    _unique([profile.name for profile in subagents], "subagent")
    profile = AgentProfile(
        name,
        instructions,
        model,
        tools,
        skills,
        subagents,
        description=description,
        thinking_level=thinking_level,
        actions=actions,
        compaction=CompactionConfig.of(compaction),
        cwd=cwd,
    )
    _check_acyclic(profile, ())
    return profile


def _check_acyclic(profile: AgentProfile, path: tuple[str, ...]) -> None:
    # Profiles are immutable, so a cycle can only come through reused names; refuse it anyway,
    # as Flue does, since delegating around a loop would only end at the depth limit.
    if profile.name in path:
        raise DefinitionError(
            f'[flue] define_agent_profile() has circular subagents: "{profile.name}".'
        )
    for child in profile.subagents:
        _check_acyclic(child, (*path, profile.name))
