"""The default sandbox: the run's in-memory tree and just-bash, a bash interpreter in Python.

Nothing here touches the host: the shell's commands are Python implementations working on the
same ``InMemoryFs`` that ``harness.fs`` wraps, and there is no network (curl is not registered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import nest_asyncio  # type: ignore[import-untyped]
from just_bash import Bash, ExecutionLimits

from ._base import TIMEOUT_EXIT_CODE, ShellResult
from ._workspace import MemoryFs, resolve_sandbox_path

__all__ = ["VirtualSandbox"]


def _refuse_nested_loops(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("nested event loops are not available in the virtual sandbox")


# just-bash calls nest_asyncio.apply() on one rare path (a command substitution inside an array
# subscript, which any model could write), and that patches asyncio for the whole process: every
# run of a host. Refused here, so that command fails like any other bad command instead.
nest_asyncio.apply = _refuse_nested_loops


class VirtualSandbox:
    def __init__(self, *, cwd: str = "/workspace", limits: ExecutionLimits | None = None) -> None:
        self._fs = MemoryFs(cwd=cwd)
        self._limits = limits or ExecutionLimits()

    @property
    def fs(self) -> MemoryFs:
        return self._fs

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ShellResult:
        where = resolve_sandbox_path(cwd, self._fs.cwd) if cwd is not None else self._fs.cwd
        # A fresh interpreter per command, as in Flue's just-bash: shell state (cd, exported
        # variables, functions) does not leak from one call into the next; only files persist.
        # HTML unescaping is off so the command runs exactly as written and recorded.
        bash = Bash(
            fs=self._fs.store,
            cwd=where,
            env=dict(env or {}),
            limits=self._limits,
            unescape_html=False,
        )
        try:
            result = await asyncio.wait_for(bash.exec(command), timeout)
        except TimeoutError:
            return ShellResult("", f"bash: timed out after {timeout}s\n", TIMEOUT_EXIT_CODE)
        return ShellResult(result.stdout, result.stderr, result.exit_code)

    async def close(self) -> None:
        """Nothing to release: the tree goes with the harness."""
