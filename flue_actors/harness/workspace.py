"""The default sandbox filesystem: an in-memory tree private to one run.

Paths are POSIX; relative paths resolve against the working directory, and a path that would
climb above the root is refused rather than clamped, so a workflow never writes somewhere it
did not name.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import SandboxPathError

__all__ = ["FileStat", "MemoryFs"]


@dataclass(frozen=True, slots=True)
class FileStat:
    is_file: bool
    is_directory: bool
    size: int
    mtime_ms: int


class MemoryFs:
    """``harness.fs``: async file operations over an in-memory tree."""

    def __init__(self, *, cwd: str = "/workspace", now_ms: int = 0) -> None:
        self._files: dict[str, tuple[bytes, int]] = {}
        self._dirs: dict[str, int] = {"/": now_ms}
        self.cwd = self._resolve(cwd, base="/")
        self._make_dirs(self.cwd, now_ms)
        self._now_ms = now_ms

    def _resolve(self, path: str, *, base: str | None = None) -> str:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise SandboxPathError(path=repr(path))
        joined = posixpath.join(base if base is not None else self.cwd, path)
        depth = 0
        for part in joined.split("/"):
            if part == "..":
                depth -= 1
                if depth < 0:
                    raise SandboxPathError(path=path)
            elif part not in ("", "."):
                depth += 1
        return posixpath.normpath(joined).replace("//", "/")

    def _make_dirs(self, path: str, now_ms: int) -> None:
        parts = [p for p in path.split("/") if p]
        current = ""
        for part in parts:
            current += "/" + part
            if current in self._files:
                raise NotADirectoryError(current)
            self._dirs.setdefault(current, now_ms)

    async def read_file(self, path: str, *, encoding: str = "utf-8") -> str:
        return (await self.read_file_bytes(path)).decode(encoding)

    async def read_file_bytes(self, path: str) -> bytes:
        full = self._resolve(path)
        if full in self._dirs:
            raise IsADirectoryError(path)
        if full not in self._files:
            raise FileNotFoundError(path)
        return self._files[full][0]

    async def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file, creating its parent folders."""
        full = self._resolve(path)
        if full in self._dirs:
            raise IsADirectoryError(path)
        self._make_dirs(posixpath.dirname(full), self._now_ms)
        content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._files[full] = (content, self._now_ms)

    async def exists(self, path: str) -> bool:
        full = self._resolve(path)
        return full in self._files or full in self._dirs

    async def stat(self, path: str) -> FileStat:
        full = self._resolve(path)
        if full in self._files:
            content, mtime = self._files[full]
            return FileStat(is_file=True, is_directory=False, size=len(content), mtime_ms=mtime)
        if full in self._dirs:
            return FileStat(is_file=False, is_directory=True, size=0, mtime_ms=self._dirs[full])
        raise FileNotFoundError(path)

    async def readdir(self, path: str = ".") -> list[str]:
        full = self._resolve(path)
        if full in self._files:
            raise NotADirectoryError(path)
        if full not in self._dirs:
            raise FileNotFoundError(path)
        prefix = full.rstrip("/") + "/"
        names = {
            entry[len(prefix) :].split("/", 1)[0]
            for entry in (*self._files, *self._dirs)
            if entry.startswith(prefix) and entry != full
        }
        return sorted(names)

    async def mkdir(self, path: str, *, recursive: bool = False) -> None:
        full = self._resolve(path)
        if full in self._files:
            raise FileExistsError(path)
        if full in self._dirs:
            if recursive:
                return
            raise FileExistsError(path)
        if not recursive and posixpath.dirname(full) not in self._dirs:
            raise FileNotFoundError(posixpath.dirname(path) or path)
        self._make_dirs(full, self._now_ms)

    async def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        full = self._resolve(path)
        if full in self._files:
            del self._files[full]
            return
        if full not in self._dirs:
            if force:
                return
            raise FileNotFoundError(path)
        if full == "/":
            raise SandboxPathError(path=path)
        prefix = full + "/"
        children = [p for p in (*self._files, *self._dirs) if p.startswith(prefix)]
        if children and not recursive:
            raise OSError(f"Directory not empty: {path}")
        for child in children:
            self._files.pop(child, None)
            self._dirs.pop(child, None)
        del self._dirs[full]
