"""The built-in workspace tools every agent's model gets: read, write, edit, bash, grep, glob.

Each works on the run's sandbox, so what the model writes is what ``harness.fs`` reads. A
failure (file missing, edit target not unique, command exit code) is raised and so becomes an
error result the model can read and correct.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from .._definitions import BUILTIN_TOOL_NAMES, ToolDefinition
from ..errors import SandboxPathError
from ..sandbox import Sandbox, SandboxFs
from ..sandbox._workspace import resolve_sandbox_path

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "WORKSPACE_TOOLS",
    "Workspace",
    "WorkspaceTool",
    "WorkspaceToolError",
]

# Bounds on what a search reads and returns, so one call cannot flood the conversation.
_MAX_FILES = 10_000
_MAX_MATCHES = 500


class WorkspaceToolError(Exception):
    """A workspace tool could not do what the model asked; the message says why."""


class ReadInput(BaseModel):
    path: str = Field(description="File path, absolute or relative to the working directory.")
    offset: int = Field(1, ge=1, description="First line to return (1-based).")
    limit: int | None = Field(None, ge=1, description="How many lines to return at most.")


class WriteInput(BaseModel):
    path: str = Field(description="File path; parent folders are created.")
    content: str = Field(description="The whole new content of the file.")


class EditInput(BaseModel):
    path: str = Field(description="File to edit.")
    old_string: str = Field(min_length=1, description="Exact text to replace.")
    new_string: str = Field(description="Replacement text.")
    replace_all: bool = Field(False, description="Replace every occurrence, not exactly one.")


class BashInput(BaseModel):
    command: str = Field(description="A bash command, run in the working directory.")
    timeout: float | None = Field(None, gt=0, description="Seconds before it is killed.")


class GrepInput(BaseModel):
    pattern: str = Field(description="Python regular expression searched line by line.")
    path: str = Field(".", description="File or folder to search (folders recursively).")
    glob: str | None = Field(None, description="Only files whose path matches this glob.")


class GlobInput(BaseModel):
    pattern: str = Field(description="Glob such as '**/*.md' ('**' spans folders).")
    path: str = Field(".", description="Folder the pattern is relative to.")


class Workspace:
    """Where one run's workspace tools work: its sandbox, which ``sandbox()`` returns (asked
    for on each call, so a run whose model never touches a file never builds one), and
    ``cwd`` (absolute), where relative paths resolve and commands run, for a task given one;
    None: the sandbox's own working directory. The tools themselves are defined once per
    process (:data:`WORKSPACE_TOOLS`): a run makes only this."""

    __slots__ = ("cwd", "sandbox")

    def __init__(self, sandbox: Callable[[], Sandbox], cwd: str | None = None) -> None:
        self.sandbox = sandbox
        self.cwd = cwd

    def at(self, path: str) -> str:
        return path if self.cwd is None else resolve_sandbox_path(path, self.cwd)


@dataclass(frozen=True, eq=False)
class WorkspaceTool(ToolDefinition):
    """A built-in tool: ``run(workspace, args)`` works on the :class:`Workspace` it is given,
    so one definition serves every run."""


async def _existing_text(workspace: Workspace, path: str) -> str:
    try:
        return await workspace.sandbox().fs.read_file(workspace.at(path))
    except FileNotFoundError:
        raise WorkspaceToolError(f"File not found: {path}") from None


async def _read(workspace: Workspace, args: ReadInput) -> str:
    text = await _existing_text(workspace, args.path)
    lines = text.splitlines(keepends=True)
    end = None if args.limit is None else args.offset - 1 + args.limit
    return "".join(lines[args.offset - 1 : end])


async def _write(workspace: Workspace, args: WriteInput) -> str:
    fs = workspace.sandbox().fs
    await fs.write_file(workspace.at(args.path), args.content)
    return f"Wrote {len(args.content.encode())} bytes to {args.path}."


async def _edit(workspace: Workspace, args: EditInput) -> str:
    text = await _existing_text(workspace, args.path)
    count = text.count(args.old_string)
    if count == 0:
        raise WorkspaceToolError(f"old_string was not found in {args.path}.")
    if count > 1 and not args.replace_all:
        raise WorkspaceToolError(
            f"old_string occurs {count} times in {args.path}; give more context to make "
            "it unique, or set replace_all."
        )
    new_text = text.replace(args.old_string, args.new_string)
    await workspace.sandbox().fs.write_file(workspace.at(args.path), new_text)
    return f"Replaced {count if args.replace_all else 1} occurrence(s) in {args.path}."


async def _bash(workspace: Workspace, args: BashInput) -> str:
    result = await workspace.sandbox().run(args.command, cwd=workspace.cwd, timeout=args.timeout)
    output = result.stdout + result.stderr
    if result.exit_code != 0:
        raise WorkspaceToolError(f"{output}\nCommand exited with code {result.exit_code}")
    return output


async def _grep(workspace: Workspace, args: GrepInput) -> str:
    fs = workspace.sandbox().fs
    try:
        regex = re.compile(args.pattern)
    except re.error as error:
        raise WorkspaceToolError(f"Invalid regular expression: {error}") from None
    matcher = _glob_regex(args.glob) if args.glob else None
    found: list[str] = []
    for path in await _files(fs, workspace.at(args.path)):
        if matcher is not None and not matcher.search(path):
            continue
        try:
            text = await fs.read_file(path)
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: not searchable text
        for number, line in enumerate(text.splitlines(), start=1):
            if regex.search(line):
                found.append(f"{path}:{number}:{line}")
                if len(found) >= _MAX_MATCHES:
                    return "\n".join([*found, f"(stopped at {_MAX_MATCHES} matches)"])
    return "\n".join(found) if found else "No matches."


async def _glob(workspace: Workspace, args: GlobInput) -> str:
    fs = workspace.sandbox().fs
    base = await _directory(fs, workspace.at(args.path))
    matcher = _glob_regex(args.pattern)
    prefix = base.rstrip("/") + "/"
    matches = [p for p in await _files(fs, base) if matcher.fullmatch(p[len(prefix) :])]
    return "\n".join(matches) if matches else "No files matched."


def _tool(name: str, description: str, input: type[BaseModel], run: Any) -> WorkspaceTool:
    # bash is answered from the log on replay (a command is never run twice); the others
    # only read or change the sandbox, which a replay must rebuild, so they run again.
    return WorkspaceTool(
        name=name, description=description, input=input, run=run, rerun_on_replay=name != "bash"
    )


WORKSPACE_TOOLS: tuple[WorkspaceTool, ...] = (
    _tool("read", "Read a text file from the workspace.", ReadInput, _read),
    _tool("write", "Create or overwrite a file in the workspace.", WriteInput, _write),
    _tool(
        "edit",
        "Replace an exact string in a file (it must occur exactly once unless replace_all).",
        EditInput,
        _edit,
    ),
    _tool("bash", "Run a bash command in the workspace.", BashInput, _bash),
    _tool("grep", "Search files for a regex; prints path:line:text.", GrepInput, _grep),
    _tool("glob", "List files matching a glob pattern.", GlobInput, _glob),
)
assert tuple(t.name for t in WORKSPACE_TOOLS) == BUILTIN_TOOL_NAMES


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over '/'-separated paths: '**/' spans folders, '*' and '?' do not."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


async def _directory(fs: SandboxFs, path: str) -> str:
    if not (await fs.stat(path)).is_directory:
        raise WorkspaceToolError(f"Not a directory: {path}")
    return _absolute(fs, path)


def _absolute(fs: SandboxFs, path: str) -> str:
    return resolve_sandbox_path(path, fs.cwd)


async def _files(fs: SandboxFs, path: str) -> list[str]:
    """Every file under ``path`` (or ``path`` itself), as absolute sandbox paths, sorted."""
    start = _absolute(fs, path)
    if not await fs.exists(start):
        raise WorkspaceToolError(f"No such file or directory: {path}")
    found: list[str] = []
    pending = [start]
    while pending and len(found) < _MAX_FILES:
        current = pending.pop()
        try:
            stat = await fs.stat(current)
        except (OSError, SandboxPathError):
            continue  # a dangling or escaping link: not part of the workspace
        if stat.is_file:
            found.append(current)
        elif stat.is_directory:
            children = await fs.readdir(current)
            pending.extend(current.rstrip("/") + "/" + child for child in children)
    return sorted(found)
