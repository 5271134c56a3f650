"""What a workflow file defines: tools, skills, agent profiles, agents, actions and workflows."""

from .profiles import *  # noqa: F403
from .profiles import __all__ as _profiles
from .workflows import *  # noqa: F403
from .workflows import BUILTIN_TOOL_NAMES
from .workflows import __all__ as _workflows

__all__ = [*_profiles, *_workflows, "BUILTIN_TOOL_NAMES"]
