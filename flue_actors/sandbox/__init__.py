"""Sandboxes: where a run's files live and its shell commands run.

``AgentConfig.sandbox`` chooses one per run: ``"virtual"`` (the default: an in-memory tree and
a bash interpreter in Python, nothing on the host), ``"local"`` (a temporary host directory and
the real bash, for trusted use) or a factory returning any :class:`Sandbox`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _lazy
from ._base import Sandbox, SandboxContext, SandboxFactory, SandboxFs, ShellResult
from ._local import LocalFs, LocalSandbox

if TYPE_CHECKING:
    from ._virtual import VirtualSandbox

__all__ = [
    "LocalFs",
    "LocalSandbox",
    "Sandbox",
    "SandboxContext",
    "SandboxFactory",
    "SandboxFs",
    "ShellResult",
    "VirtualSandbox",
    "create_sandbox",
]

_lazy.publish(__name__)

# The virtual sandbox is just-bash: loaded by the first run that uses it.
__getattr__ = _lazy.lazy_exports(__name__, {"._virtual": ["VirtualSandbox"]})


def create_sandbox(choice: Any, context: SandboxContext) -> Sandbox:
    """The sandbox ``AgentConfig.sandbox`` names, made for one run."""
    if choice == "virtual":
        from ._virtual import VirtualSandbox

        return VirtualSandbox(cwd=context.cwd)
    if choice == "local":
        return LocalSandbox(cwd=context.cwd)
    sandbox = choice(context)
    if not isinstance(sandbox, Sandbox):
        raise TypeError(f"The sandbox factory returned {sandbox!r}, which is not a Sandbox.")
    return sandbox
