"""The default sandbox filesystem: an in-memory tree private to one run.

Paths are POSIX; relative paths resolve against the working directory, and a path that would
climb above the root is refused rather than clamped, so a workflow never writes somewhere it
did not name.

The files live in a just-bash ``InMemoryFs`` (the ``store``), so the virtual sandbox's shell
and ``harness.fs`` read and write one tree: a file written here is what ``cat`` prints there.
This class keeps Flue's FlueFs semantics (errors, confinement) on top of that store.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SandboxPathError

if TYPE_CHECKING:
    from just_bash.fs import InMemoryFs

__all__ = ["FileStat", "MemoryFs", "resolve_sandbox_path"]


@dataclass(frozen=True, slots=True)
class FileStat:
    is_file: bool
    is_directory: bool
    size: int
    mtime_ms: int


def resolve_sandbox_path(path: str, base: str) -> str:
    """``path`` made absolute against ``base`` (an absolute sandbox path) and normalized;
    :class:`SandboxPathError` if it names something above the root."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SandboxPathError(path=repr(path))
    joined = posixpath.join(base, path)
    depth = 0
    for part in joined.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise SandboxPathError(path=path)
        elif part not in ("", "."):
            depth += 1
    return "/" + posixpath.normpath(joined).lstrip("/")


class MemoryFs:
    """``harness.fs``: async file operations over an in-memory tree."""

    def __init__(self, *, cwd: str = "/workspace", store: InMemoryFs | None = None) -> None:
        if store is None:
            # just-bash (with aiohttp under it) was most of flue_actors' import time: paid by the
            # first run that uses a virtual sandbox, not by every process that imports the package.
            from just_bash.fs import InMemoryFs

            store = InMemoryFs()
        self.store = store
        self.cwd = resolve_sandbox_path(cwd, "/")
        self.store._mkdir_sync(self.cwd, recursive=True)

    def _resolve(self, path: str) -> str:
        return resolve_sandbox_path(path, self.cwd)

    async def _kind(self, full: str) -> str | None:
        try:
            stat = await self.store.stat(full)
        except OSError:
            return None
        return "file" if stat.is_file else "dir" if stat.is_directory else None

    async def _make_dirs(self, full: str) -> None:
        current = ""
        for part in (p for p in full.split("/") if p):
            current += "/" + part
            kind = await self._kind(current)
            if kind == "file":
                raise NotADirectoryError(current)
            if kind is None:
                await self.store.mkdir(current)

    async def read_file(self, path: str, *, encoding: str = "utf-8") -> str:
        return (await self.read_file_bytes(path)).decode(encoding)

    async def read_file_bytes(self, path: str) -> bytes:
        full = self._resolve(path)
        kind = await self._kind(full)
        if kind == "dir":
            raise IsADirectoryError(path)
        if kind is None:
            raise FileNotFoundError(path)
        return await self.store.read_file_bytes(full)

    async def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file, creating its parent folders."""
        full = self._resolve(path)
        if await self._kind(full) == "dir":
            raise IsADirectoryError(path)
        await self._make_dirs(posixpath.dirname(full))
        content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        await self.store.write_file(full, content)

    async def exists(self, path: str) -> bool:
        return await self._kind(self._resolve(path)) is not None

    async def stat(self, path: str) -> FileStat:
        full = self._resolve(path)
        if await self._kind(full) is None:
            raise FileNotFoundError(path)
        stat = await self.store.stat(full)
        return FileStat(
            is_file=stat.is_file,
            is_directory=stat.is_directory,
            size=stat.size if stat.is_file else 0,
            mtime_ms=int(stat.mtime * 1000),
        )

    async def readdir(self, path: str = ".") -> list[str]:
        full = self._resolve(path)
        kind = await self._kind(full)
        if kind == "file":
            raise NotADirectoryError(path)
        if kind is None:
            raise FileNotFoundError(path)
        return sorted(await self.store.readdir(full))

    async def mkdir(self, path: str, *, recursive: bool = False) -> None:
        full = self._resolve(path)
        kind = await self._kind(full)
        if kind == "file" or (kind == "dir" and not recursive):
            raise FileExistsError(path)
        if kind == "dir":
            return
        if not recursive and await self._kind(posixpath.dirname(full)) != "dir":
            raise FileNotFoundError(posixpath.dirname(path) or path)
        await self._make_dirs(full)

    async def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        full = self._resolve(path)
        kind = await self._kind(full)
        if kind is None:
            if force:
                return
            raise FileNotFoundError(path)
        if full == "/":
            raise SandboxPathError(path=path)
        if kind == "dir" and not recursive and await self.store.readdir(full):
            raise OSError(f"Directory not empty: {path}")
        await self.store.rm(full, recursive=recursive, force=force)
