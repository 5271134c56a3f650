"""A sandbox in a temporary directory on the host, for trusted workflows only.

Commands run with the host's real bash and can reach anything the process can: the
confinement here is of the *paths the framework is given* (``fs`` and ``cwd``), not of what a
command does. What it does guarantee: a scrubbed environment (no host secrets inherited), a
timeout that kills the whole process group, and the directory removed at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import SandboxPathError
from ._base import TIMEOUT_EXIT_CODE, ShellResult
from ._workspace import FileStat, resolve_sandbox_path

__all__ = ["LocalFs", "LocalSandbox"]

# Only these host variables reach a command; everything else (API keys, tokens) stays out.
_PASSED_THROUGH = ("PATH", "LANG")


class LocalFs:
    """FlueFs over a host directory. Sandbox path ``/`` is the directory; symlinks are
    resolved and a path that lands outside the directory is refused."""

    def __init__(self, root: Path, *, cwd: str = "/workspace") -> None:
        self.root = root.resolve()
        self.cwd = resolve_sandbox_path(cwd, "/")
        self.host_path(self.cwd).mkdir(parents=True, exist_ok=True)

    def host_path(self, path: str) -> Path:
        """The host path for a sandbox path, symlinks resolved; refused if outside the root."""
        virtual = resolve_sandbox_path(path, self.cwd)
        real = Path(os.path.realpath(self.root / virtual.lstrip("/")))
        if real != self.root and self.root not in real.parents:
            raise SandboxPathError(path=path)
        return real

    async def read_file(self, path: str, *, encoding: str = "utf-8") -> str:
        return (await self.read_file_bytes(path)).decode(encoding)

    async def read_file_bytes(self, path: str) -> bytes:
        return self.host_path(path).read_bytes()

    async def write_file(self, path: str, data: str | bytes) -> None:
        target = self.host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else bytes(data))

    async def exists(self, path: str) -> bool:
        return self.host_path(path).exists()

    async def stat(self, path: str) -> FileStat:
        target = self.host_path(path)
        info = target.stat()
        return FileStat(
            is_file=target.is_file(),
            is_directory=target.is_dir(),
            size=info.st_size if target.is_file() else 0,
            mtime_ms=int(info.st_mtime * 1000),
        )

    async def readdir(self, path: str = ".") -> list[str]:
        target = self.host_path(path)
        if target.is_file():
            raise NotADirectoryError(path)
        return sorted(os.listdir(target))

    async def mkdir(self, path: str, *, recursive: bool = False) -> None:
        target = self.host_path(path)
        if target.is_file():
            raise FileExistsError(path)
        target.mkdir(parents=recursive, exist_ok=recursive)

    async def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        target = self.host_path(path)
        if target == self.root:
            raise SandboxPathError(path=path)
        if not target.exists():
            if force:
                return
            raise FileNotFoundError(path)
        if target.is_dir():
            if recursive:
                shutil.rmtree(target)
            elif any(target.iterdir()):
                raise OSError(f"Directory not empty: {path}")
            else:
                target.rmdir()
        else:
            target.unlink()


class LocalSandbox:
    def __init__(self, *, cwd: str = "/workspace") -> None:
        self._root = Path(tempfile.mkdtemp(prefix="flue-sandbox-"))
        self._fs = LocalFs(self._root, cwd=cwd)

    @property
    def fs(self) -> LocalFs:
        return self._fs

    @property
    def root(self) -> Path:
        return self._fs.root

    async def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ShellResult:
        where = self._fs.host_path(cwd if cwd is not None else self._fs.cwd)
        where.mkdir(parents=True, exist_ok=True)
        scrubbed = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        # HOME is the sandbox root, so dotfiles a tool writes stay in (and go with) the sandbox.
        scrubbed["HOME"] = str(self.root)
        scrubbed.update(env or {})
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=where,
            env=scrubbed,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so a timeout or abort kills the children it spawned too.
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            await _kill_group(process)
            return ShellResult("", f"bash: timed out after {timeout}s\n", TIMEOUT_EXIT_CODE)
        except BaseException:  # aborted: leave nothing running behind the caller
            await _kill_group(process)
            raise
        code = process.returncode if process.returncode is not None else -1
        return ShellResult(
            stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"), code
        )

    async def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
