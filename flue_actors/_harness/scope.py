"""``AgentScope``: the agent a session speaks as — its instructions, tools, skills, subagents,
model default and delegation depth.

The root sessions of a harness share the run's agent config; a task's child session gets a
scope of its own (reference 1.3): instructions, tools, skills and subagents only from the
subagent's profile, model, thinking level and compaction falling back to the delegating
session's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .._definitions import (
    ActionDefinition,
    AgentConfig,
    AgentProfile,
    CompactionConfig,
    SkillDefinition,
    ToolDefinition,
)
from .._mcp import MCPTools
from ..models import ThinkingLevel
from .tools import ToolBox
from .workspace_context import EMPTY, Skill, WorkspaceContext, merge_skills, system_prompt

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["MAX_DELEGATION_DEPTH", "AgentScope"]

# Tasks and actions run as tools nest at most this deep (Flue counts them alike): a session
# this deep in delegation may not delegate again.
MAX_DELEGATION_DEPTH = 4


@dataclass(frozen=True)
class AgentScope:
    instructions: str | None
    tools: ToolBox
    skills: Mapping[str, Skill] = field(default_factory=dict)
    subagents: Mapping[str, AgentProfile] = field(default_factory=dict)
    # None: the harness's default model.
    model: str | None = None
    thinking_level: ThinkingLevel | None = None
    depth: int = 0
    compaction: CompactionConfig | Literal[False] | None = None
    # What ``tools`` was built from, to build it again one level deeper for a task that
    # reuses this agent (its action tools carry their depth).
    own_tools: Sequence[ToolDefinition | MCPTools] = ()
    actions: Sequence[ActionDefinition[Any, Any]] = ()
    # A task's working directory (absolute), where its workspace tools and shell commands
    # resolve relative paths; None: the sandbox's.
    cwd: str | None = None
    # What the session found in its working directory (AGENTS.md, skills).
    workspace: WorkspaceContext = EMPTY

    @cached_property
    def system_prompt(self) -> str | None:
        return system_prompt(self.instructions, self.workspace, self.skills)

    def with_workspace(self, context: WorkspaceContext) -> AgentScope:
        """This scope with ``context`` discovered: its skills join the declared ones (a
        previous discovery's are replaced)."""
        declared = {n: s for n, s in self.skills.items() if isinstance(s, SkillDefinition)}
        skills = merge_skills(declared, context.skills)
        return dataclasses.replace(self, skills=skills, workspace=context)

    @classmethod
    def root(cls, config: AgentConfig, tools: ToolBox, *, depth: int = 0) -> AgentScope:
        return cls(
            instructions=config.instructions,
            tools=tools,
            skills={skill.name: skill for skill in config.skills},
            subagents={profile.name: profile for profile in config.subagents},
            thinking_level=config.thinking_level,
            depth=depth,
            compaction=config.compaction,
            own_tools=config.tools,
            actions=config.actions,
        )

    def delegate(
        self,
        profile: AgentProfile | None,
        *,
        model: str | None,
        thinking_level: ThinkingLevel | None,
        harness: Harness,
        cwd: str | None = None,
    ) -> AgentScope:
        """The scope of a task's child session; ``profile`` None reuses this agent whole.
        A child gets the run's built-in workspace tools whatever its profile, working in
        ``cwd`` (or the profile's), relative to this scope's."""
        model = model or (profile.model if profile is not None else None) or self.model
        level = (
            thinking_level
            or (profile.thinking_level if profile is not None else None)
            or self.thinking_level
        )
        depth = self.depth + 1
        cwd = cwd or (profile.cwd if profile is not None else None)
        where = harness.working_directory(cwd, self.cwd) if cwd is not None else self.cwd
        if profile is None:
            # Action tools depend on the depth, workspace tools on the cwd; without either
            # change the tools are shared.
            tools = (
                harness.tool_box(self.own_tools, self.actions, depth=depth, cwd=where)
                if self.actions or where != self.cwd
                else self.tools
            )
            return AgentScope(
                self.instructions, tools, self.skills, self.subagents, model, level, depth,
                self.compaction, self.own_tools, self.actions, where,
            )  # fmt: skip
        return AgentScope(
            instructions=profile.instructions,
            tools=harness.tool_box(profile.tools, profile.actions, depth=depth, cwd=where),
            skills={skill.name: skill for skill in profile.skills},
            subagents={child.name: child for child in profile.subagents},
            model=model,
            thinking_level=level,
            depth=depth,
            # A profile's own setting, else the delegating session's (Flue's fallback).
            compaction=self.compaction if profile.compaction is None else profile.compaction,
            own_tools=profile.tools,
            actions=profile.actions,
            cwd=where,
        )
