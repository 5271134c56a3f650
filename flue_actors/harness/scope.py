"""``AgentScope``: the agent a session speaks as — its instructions, tools, skills, subagents,
model default and delegation depth.

The root sessions of a harness share the run's agent config; a task's child session gets a
scope of its own (reference 1.3): instructions, tools, skills and subagents only from the
subagent's profile, model, thinking level and compaction falling back to the delegating
session's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..capabilities import AgentProfile, SkillDefinition
from ..clock import Clock
from ..definitions import AgentConfig, CompactionConfig, ThinkingLevel, ToolDefinition
from .sink import EventSink
from .tools import ToolBox

__all__ = ["MAX_DELEGATION_DEPTH", "AgentScope"]

# Tasks nest at most this deep (Flue counts tasks and actions alike): a session this deep in
# delegation may not delegate again.
MAX_DELEGATION_DEPTH = 4


@dataclass(frozen=True)
class AgentScope:
    instructions: str | None
    tools: ToolBox
    skills: Mapping[str, SkillDefinition] = field(default_factory=dict)
    subagents: Mapping[str, AgentProfile] = field(default_factory=dict)
    # None: the harness's default model.
    model: str | None = None
    thinking_level: ThinkingLevel | None = None
    depth: int = 0
    compaction: CompactionConfig | Literal[False] | None = None

    @classmethod
    def root(cls, config: AgentConfig, tools: ToolBox) -> AgentScope:
        return cls(
            instructions=config.instructions,
            tools=tools,
            skills={skill.name: skill for skill in config.skills},
            subagents={profile.name: profile for profile in config.subagents},
            thinking_level=config.thinking_level,
            compaction=config.compaction,
        )

    def delegate(
        self,
        profile: AgentProfile | None,
        *,
        model: str | None,
        thinking_level: ThinkingLevel | None,
        sink: EventSink,
        clock: Clock,
        workspace: Sequence[ToolDefinition] = (),
    ) -> AgentScope:
        """The scope of a task's child session; ``profile`` None reuses this agent whole.
        ``workspace`` are the run's sandbox tools, which a profiled child shares too."""
        model = model or (profile.model if profile is not None else None) or self.model
        level = thinking_level or self.thinking_level
        if profile is None:
            return AgentScope(
                self.instructions, self.tools, self.skills, self.subagents,
                model, level, self.depth + 1, self.compaction,
            )  # fmt: skip
        return AgentScope(
            instructions=profile.instructions,
            tools=ToolBox([*workspace, *profile.tools], sink=sink, clock=clock),
            skills={skill.name: skill for skill in profile.skills},
            subagents={child.name: child for child in profile.subagents},
            model=model,
            thinking_level=level,
            depth=self.depth + 1,
            compaction=self.compaction,
        )
