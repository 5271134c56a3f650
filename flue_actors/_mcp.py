"""``mcp_tools``: the tools of an MCP server, given to an agent next to its own tools.

``define_agent(tools=[lookup, mcp_tools(name="files", command="files-server")])`` gives the
model every tool the server lists, named ``mcp__<server>__<tool>`` as in Flue, so they cannot
collide with the agent's own tools or with another server's. The server is reached over stdio
(``command``: a process the run starts) or streamable HTTP (``url``).

This module is only the definition, validated when made; it does not import the ``mcp`` SDK
(an optional extra, ``pip install 'flue-actors[mcp]'``). The connection lives in
:mod:`flue_actors._harness.mcp_connection`: one per server per run, opened when the run's model
first needs its tools and closed when the run ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import DefinitionError

__all__ = ["MCPTools", "mcp_tool_name", "mcp_tools"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _name_part(value: str) -> str:
    # Model APIs accept [A-Za-z0-9_-] in tool names; anything else becomes "_".
    return _UNSAFE.sub("_", value).strip("_") or "unnamed"


def mcp_tool_name(server: str, tool: str) -> str:
    """The name the model sees for ``tool`` of ``server``: ``mcp__<server>__<tool>``."""
    return f"mcp__{_name_part(server)}__{_name_part(tool)}"


@dataclass(frozen=True, eq=False)
class MCPTools:
    """An MCP server whose tools an agent gets. Make one with :func:`mcp_tools`."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    # The server's tool names to give the model (None: all of them).
    allow: tuple[str, ...] | None = None
    # Seconds one tool call may take before it fails (None: the SDK's default).
    timeout: float | None = None

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable-http"

    @property
    def prefix(self) -> str:
        """What every tool name of this server starts with."""
        return f"mcp__{_name_part(self.name)}__"


def _strings(value: object, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise DefinitionError(f"[flue] mcp_tools({{ {what} }}) must map strings to strings.")
    return dict(value)


def mcp_tools(
    *,
    name: str,
    command: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    tools: Sequence[str] | None = None,
    timeout: float | None = None,
) -> MCPTools:
    """The tools of the MCP server ``name``: started as ``command`` with ``args`` (stdio; ``env``
    is added to a minimal default environment, as the SDK does) or reached at ``url``
    (streamable HTTP, with ``headers`` on every request). ``tools`` limits the model to the
    server tools named; naming one the server does not list fails the run's connection."""
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError("[flue] mcp_tools({ name }) must be a non-empty string.")
    if (command is None) == (url is None):
        raise DefinitionError(
            f'[flue] mcp_tools("{name}") needs exactly one of command= (stdio) and url= '
            "(streamable HTTP)."
        )
    if command is not None and (not isinstance(command, str) or not command):
        raise DefinitionError("[flue] mcp_tools({ command }) must be a non-empty string.")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise DefinitionError("[flue] mcp_tools({ url }) must be an http:// or https:// URL.")
    if isinstance(args, str) or not all(isinstance(arg, str) for arg in args):
        raise DefinitionError("[flue] mcp_tools({ args }) must be a sequence of strings.")
    if command is None and (args or env is not None or cwd is not None):
        raise DefinitionError("[flue] mcp_tools({ args, env, cwd }) apply to command= only.")
    if url is None and headers is not None:
        raise DefinitionError("[flue] mcp_tools({ headers }) apply to url= only.")
    allow: tuple[str, ...] | None = None
    if tools is not None:
        if isinstance(tools, str) or not all(isinstance(t, str) and t for t in tools):
            raise DefinitionError("[flue] mcp_tools({ tools }) must be a sequence of tool names.")
        allow = tuple(tools)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise DefinitionError("[flue] mcp_tools({ timeout }) must be a positive number of seconds.")
    return MCPTools(
        name=name.strip(),
        command=command,
        args=tuple(args),
        env=_strings(env, "env"),
        cwd=cwd,
        url=url,
        headers=_strings(headers, "headers"),
        allow=allow,
        timeout=float(timeout) if timeout is not None else None,
    )
