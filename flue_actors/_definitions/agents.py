"""``define_agent``: the model, instructions and capabilities a workflow's sessions speak with.

An agent is a static config (``define_agent(model=...)``) or an initializer called once per run
with :class:`AgentContext`; either way the config is an :class:`AgentConfig`, checked when made.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._mcp import MCPTools
from ..errors import DefinitionError
from ._checks import check_model, check_thinking_level
from .actions import ActionDefinition, check_offered_actions
from .compaction import CompactionConfig
from .profiles import AgentProfile
from .skills import SkillDefinition
from .tools import ToolDefinition, check_tool_names, own_tool_names

if TYPE_CHECKING:
    from ..models._base import ThinkingLevel
    from ..sandbox import SandboxFactory

__all__ = ["AgentConfig", "AgentContext", "AgentDefinition", "AgentInitializer", "define_agent"]


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """The runtime configuration an agent initializer returns.

    With a ``profile``, the profile is the baseline (Flue's merge): a field given here wins
    over the profile's (``None`` is not given), and tools, actions, skills and subagents are
    the profile's followed by these. After construction the fields hold the merged values.
    """

    # Required, here or from the profile.
    model: str = None  # type: ignore[assignment]
    instructions: str | None = None
    description: str | None = None
    thinking_level: ThinkingLevel | None = None
    tools: Sequence[ToolDefinition | MCPTools] = ()
    skills: Sequence[SkillDefinition] = ()
    subagents: Sequence[AgentProfile] = ()
    # Actions the model may call as tools, each run in a scope of its own on the run's sandbox.
    actions: Sequence[ActionDefinition[Any, Any]] = ()
    cwd: str | None = None
    # Where files live and commands run: "virtual" (in memory, the default), "local" (a
    # temporary host directory; trusted use only) or a factory returning a Sandbox.
    sandbox: Literal["virtual", "local"] | SandboxFactory = "virtual"
    # Automatic compaction: None for the defaults, False for none (session.compact() still
    # works), a CompactionConfig (or a mapping of its fields) to tune it.
    compaction: CompactionConfig | Literal[False] | None = None
    profile: AgentProfile | None = None

    def __post_init__(self) -> None:
        # A mapping is accepted as Flue's object literal is; it is stored as the typed value.
        object.__setattr__(self, "compaction", CompactionConfig.of(self.compaction))
        if self.profile is not None:
            self._merge(self.profile)
        check_model(self.model, "define_agent()")
        check_thinking_level(self.thinking_level)
        if self.sandbox not in ("virtual", "local") and not callable(self.sandbox):
            raise DefinitionError(
                "[flue] sandbox must be 'virtual', 'local' or a function returning a Sandbox, "
                f"got {self.sandbox!r}."
            )
        check_offered_actions(self.actions, "define_agent()")
        # Tools and actions are one list to the model: a name may appear once across both.
        check_tool_names(own_tool_names(self.tools) + [a.name for a in self.actions])
        for kind, items in (("skill", self.skills), ("subagent", self.subagents)):
            named = [item.name for item in items]
            if len(named) != len(set(named)):
                raise DefinitionError(
                    f"[flue] define_agent() {kind}s must not contain duplicate {kind} names."
                )

    def _merge(self, profile: AgentProfile) -> None:
        if not isinstance(profile, AgentProfile):
            raise DefinitionError(
                "[flue] define_agent({ profile }) must be a define_agent_profile() value."
            )
        merged: dict[str, Any] = {
            "tools": (*profile.tools, *self.tools),
            "actions": (*profile.actions, *self.actions),
            "skills": (*profile.skills, *self.skills),
            "subagents": (*profile.subagents, *self.subagents),
        }
        for name in ("model", "instructions", "description", "thinking_level", "cwd", "compaction"):
            if getattr(self, name) is None:
                merged[name] = getattr(profile, name)
        for name, value in merged.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AgentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise DefinitionError(
                    "[flue] define_agent() initializer returned unknown runtime config field "
                    f'"{key}".'
                )
        return cls(**values)


@dataclass(frozen=True)
class AgentContext:
    """What an agent initializer receives: for workflows, ``id`` is the run id."""

    id: str
    env: Mapping[str, str]


AgentInitializer: TypeAlias = Callable[
    [AgentContext], "AgentConfig | Mapping[str, Any] | Awaitable[AgentConfig | Mapping[str, Any]]"
]


@dataclass(frozen=True, eq=False)
class AgentDefinition:
    initialize: AgentInitializer
    # The config itself when define_agent() was given its fields: known before any run (an
    # initializer's is known only once it is called, per run).
    config: AgentConfig | None = None

    async def configure(self, context: AgentContext) -> AgentConfig:
        """Call the initializer (once per run) and validate what it returns."""
        config = self.initialize(context)
        if inspect.isawaitable(config):
            config = await config
        if isinstance(config, AgentConfig):
            return config
        if isinstance(config, Mapping):
            return AgentConfig.from_mapping(config)
        raise DefinitionError(
            "[flue] define_agent() initializer must return an AgentConfig "
            "or a mapping of its fields."
        )


def define_agent(initialize: AgentInitializer | None = None, /, **config: Any) -> AgentDefinition:
    """An agent: either a static config (``define_agent(model=...)``) or an initializer function
    called once per run with :class:`AgentContext` (``define_agent(lambda ctx: AgentConfig(...))``).
    """
    if initialize is not None:
        if config:
            raise DefinitionError(
                "[flue] define_agent() takes an initializer or config fields, not both."
            )
        if not callable(initialize):
            raise DefinitionError("[flue] define_agent() initializer must be a function.")
        return AgentDefinition(initialize=initialize)
    static = AgentConfig.from_mapping(config)
    return AgentDefinition(initialize=lambda _context: static, config=static)
