"""What a sandbox is: a filesystem and a shell that run in the same place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from ._workspace import FileStat

__all__ = ["Sandbox", "SandboxContext", "SandboxFactory", "SandboxFs", "ShellResult"]


@dataclass(frozen=True, slots=True)
class ShellResult:
    stdout: str
    stderr: str
    exit_code: int


class SandboxFs(Protocol):
    """Flue's FlueFs: what ``harness.fs`` offers, whichever sandbox backs it."""

    cwd: str

    async def read_file(self, path: str, *, encoding: str = "utf-8") -> str: ...
    async def read_file_bytes(self, path: str) -> bytes: ...
    async def write_file(self, path: str, data: str | bytes) -> None: ...
    async def exists(self, path: str) -> bool: ...
    async def stat(self, path: str) -> FileStat: ...
    async def readdir(self, path: str = ".") -> list[str]: ...
    async def mkdir(self, path: str, *, recursive: bool = False) -> None: ...
    async def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """Where a run's files live and its shell commands run. ``fs`` and ``run`` see the same
    files. Paths given to either never leave the sandbox root."""

    @property
    def fs(self) -> SandboxFs: ...

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ShellResult:
        """Run ``command`` with bash. ``cwd`` is a sandbox path (default ``fs.cwd``); ``env``
        is added to the command's environment; past ``timeout`` seconds the command is killed
        and the result has exit code 124, as with coreutils' ``timeout``."""
        ...

    async def close(self) -> None:
        """Release what the sandbox holds (the harness calls this once, at run end)."""
        ...


@dataclass(frozen=True, slots=True)
class SandboxContext:
    """What a sandbox factory is given: the run's id and the agent's working directory."""

    id: str
    cwd: str


SandboxFactory: TypeAlias = Callable[[SandboxContext], Sandbox]

TIMEOUT_EXIT_CODE = 124
