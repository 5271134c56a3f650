"""What a workflow file defines, one module per concept: tools, skills, agent profiles, agents,
actions and workflows. Definitions are immutable values made and checked at import time."""

from .actions import ActionContext, ActionDefinition, define_action, validation_issues
from .agents import AgentConfig, AgentContext, AgentDefinition, define_agent
from .compaction import CompactionConfig
from .profiles import AgentProfile, define_agent_profile
from .skill_files import load_skill
from .skills import SkillDefinition, define_skill
from .tools import (
    BUILTIN_TOOL_NAMES,
    RESERVED_TOOL_NAMES,
    ToolDefinition,
    check_tool_names,
    define_tool,
)
from .workflows import Isolation, Placement, WorkflowDefinition, define_workflow

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "RESERVED_TOOL_NAMES",
    "ActionContext",
    "ActionDefinition",
    "AgentConfig",
    "AgentContext",
    "AgentDefinition",
    "AgentProfile",
    "CompactionConfig",
    "Isolation",
    "Placement",
    "SkillDefinition",
    "ToolDefinition",
    "WorkflowDefinition",
    "check_tool_names",
    "define_action",
    "define_agent",
    "define_agent_profile",
    "define_skill",
    "define_tool",
    "define_workflow",
    "load_skill",
    "validation_issues",
]
