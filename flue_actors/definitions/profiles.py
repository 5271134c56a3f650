"""``define_skill`` and ``define_agent_profile``: what an agent can do beyond its own tools.

A skill is a named set of instructions (and optional text resources) the agent runs on request;
a profile describes a subagent that ``session.task(agent=...)`` delegates to. Both are plain
immutable values, validated when made, so a mistake fails at import time and not mid-run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import DefinitionError, ToolNameConflictError

if TYPE_CHECKING:
    from .workflows import ToolDefinition

__all__ = [
    "RESERVED_TOOL_NAMES",
    "AgentProfile",
    "SkillDefinition",
    "check_tool_names",
    "define_agent_profile",
    "define_skill",
]

# Tool names the harness gives the model itself (Flue's assembleModelTools): a user tool with
# one of these names would shadow the framework's and break skills, tasks or results.
RESERVED_TOOL_NAMES = frozenset(
    {"task", "activate_skill", "read_skill_resource", "finish", "give_up"}
)


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"[flue] {where}({{ {key} }}) must be a non-empty string.")
    return value.strip()


def _unique(names: Iterable[str], where: str, kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"[flue] {where}() must not contain duplicate {kind} name.")
        seen.add(name)


def check_tool_names(tools: Sequence[ToolDefinition]) -> None:
    """Refuse user tools named like a framework tool (``tool_name_conflict``)."""
    for tool in tools:
        if tool.name in RESERVED_TOOL_NAMES:
            raise ToolNameConflictError(name=tool.name, reason="a framework tool")


@dataclass(frozen=True, eq=False)
class SkillDefinition:
    """An inline skill: ``instructions`` the agent follows, ``resources`` it may read by name."""

    name: str
    description: str
    instructions: str
    resources: Mapping[str, str] = field(default_factory=dict)


def define_skill(
    *, name: str, description: str, instructions: str, resources: Mapping[str, str] | None = None
) -> SkillDefinition:
    name = _text(name, "define_skill", "name")
    description = _text(description, "define_skill", "description")
    instructions = _text(instructions, "define_skill", "instructions")
    resources = dict(resources or {})
    for key, value in resources.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise DefinitionError(
                "[flue] define_skill({ resources }) must map non-empty names to text."
            )
    return SkillDefinition(name, description, instructions, resources)


@dataclass(frozen=True, eq=False)
class AgentProfile:
    """A subagent. Instructions, tools, skills and subagents come only from the profile; an
    omitted ``model`` (and the thinking level) falls back to the delegating session's."""

    name: str
    instructions: str | None = None
    model: str | None = None
    tools: Sequence[ToolDefinition] = ()
    skills: Sequence[SkillDefinition] = ()
    subagents: Sequence[AgentProfile] = ()


def define_agent_profile(
    *,
    name: str,
    instructions: str | None = None,
    model: str | None = None,
    tools: Sequence[ToolDefinition] = (),
    skills: Sequence[SkillDefinition] = (),
    subagents: Sequence[AgentProfile] = (),
) -> AgentProfile:
    name = _text(name, "define_agent_profile", "name")
    if model is not None and (not isinstance(model, str) or "/" not in model.strip("/")):
        raise DefinitionError(
            "[flue] define_agent_profile({ model }) must be written as 'provider/model-id'."
        )
    tools, skills, subagents = tuple(tools), tuple(skills), tuple(subagents)
    _unique((tool.name for tool in tools), "define_agent_profile", "tool")
    _unique((skill.name for skill in skills), "define_agent_profile", "skill")
    _unique((profile.name for profile in subagents), "define_agent_profile", "subagent")
    check_tool_names(tools)
    profile = AgentProfile(name, instructions, model, tools, skills, subagents)
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
