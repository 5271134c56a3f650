"""Connections to MCP servers, through the official ``mcp`` SDK (the optional ``mcp`` extra).

A run connects to each server its agents name once, when a model first needs the server's
tools, and closes every connection when the run ends (:class:`MCPConnections`, owned by the
run's root harness and shared with its child scopes and tasks).

The SDK's client is an anyio context whose cancel scopes must be left by the task that entered
them, while a run's operations are tasks of their own that come and go. So each connection is
held open by a task of its own (:meth:`MCPConnection._hold`), which the operations ask for tool
calls and the run's close tells to leave.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._mcp import MCPTools, mcp_tool_name
from ..errors import FlueError, MCPConnectionError, ToolNameConflictError
from ..models import ToolSpec

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult, Implementation, Tool

__all__ = ["MCPConnection", "MCPConnections", "MCPTool"]

# Seconds a server may take to start and list its tools before the run gives up on it.
CONNECT_TIMEOUT = 60.0


@dataclass(frozen=True, eq=False)
class MCPTool:
    """One tool of a connected server, as the model sees and calls it."""

    name: str
    spec: ToolSpec
    server_tool: str
    connection: MCPConnection

    async def call(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Call the tool; (the text the model reads back, whether it is an error)."""
        return await self.connection.call(self.server_tool, arguments)


def _leaves(error: BaseException) -> list[BaseException]:
    # anyio task groups wrap what went wrong in (nested) exception groups.
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _describe(error: BaseException) -> str:
    return "; ".join(
        f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__
        for leaf in _leaves(error)
    )


def _description(server: str, tool: Tool) -> str:
    parts = [f'MCP tool "{tool.name}" from server "{server}".']
    if tool.title and tool.title != tool.name:
        parts.append(f"Title: {tool.title}.")
    if tool.description:
        parts.append(tool.description)
    return " ".join(parts)


def _parameters(tool: Tool) -> dict[str, Any]:
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def render_result(result: CallToolResult) -> str:
    """A tool result as text the model reads: structured content as JSON, text as is, and
    binary content described rather than inlined (as Flue renders it)."""
    parts: list[str] = []
    if result.structured_content is not None:
        structured = json.dumps(result.structured_content, indent=2, ensure_ascii=False)
        parts.append(f"Structured content:\n{structured}")
    for item in result.content:
        data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
        kind = data.get("type")
        if kind == "text":
            parts.append(data.get("text", ""))
        elif kind in ("image", "audio"):
            size = len(data.get("data", ""))
            parts.append(f"[{kind.title()}: {data.get('mimeType')}, {size} base64 chars]")
        elif kind == "resource":
            resource = data.get("resource", {})
            if "text" in resource:
                parts.append(f"[Resource: {resource.get('uri')}]\n{resource['text']}")
            else:
                size = len(resource.get("blob", ""))
                parts.append(f"[Resource: {resource.get('uri')}, {size} base64 chars]")
        elif kind == "resource_link":
            about = f" - {data['description']}" if data.get("description") else ""
            parts.append(f"[Resource link: {data.get('name')} ({data.get('uri')}){about}]")
        else:
            parts.append(json.dumps(data, ensure_ascii=False))
    return "\n\n".join(part for part in parts if part) or "(MCP tool returned no content)"


class MCPConnection:
    """One open connection to one server, held by a task of its own."""

    def __init__(self, server: MCPTools) -> None:
        self.server = server
        self.tools: list[MCPTool] = []
        self._client: Client | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leave = asyncio.Event()
        self._holder: asyncio.Task[None] | None = None
        self._lost: str | None = None

    async def open(self) -> None:
        """Start the server (or reach it), list its tools; :class:`MCPConnectionError` if that
        fails, with the connection already cleaned up."""
        self._holder = asyncio.get_running_loop().create_task(self._hold())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise self._failure(f"no answer within {CONNECT_TIMEOUT:g} seconds") from None
        except BaseException:  # its own failure, or the run cancelling the start
            await self.close()
            raise

    def _failure(self, reason: str) -> MCPConnectionError:
        server = self.server
        if server.url is not None:
            # The error is recorded in the run's log: no credentials from the URL in it.
            parts = urlsplit(server.url)
            target = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        else:
            target = server.command or ""
        return MCPConnectionError(
            server=server.name, transport=server.transport, target=target, reason=reason
        )

    async def _hold(self) -> None:
        try:
            async with self._connect() as client:
                self._client = client
                self.tools = self._adapt(await self._list(client))
                self._ready.set_result(None)
                await self._leave.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # the SDK reports failures in exception groups
            if not self._ready.done():
                # One of ours (a tool named twice, an unlisted allowed tool) stays what it is.
                typed = [leaf for leaf in _leaves(error) if isinstance(leaf, FlueError)]
                self._ready.set_exception(typed[0] if typed else self._failure(_describe(error)))
            else:
                self._lost = _describe(error)
        finally:
            self._client = None

    def _connect(self) -> AbstractAsyncContextManager[Client]:
        try:
            from mcp import Client, StdioServerParameters
            from mcp_types import Implementation
        except ImportError as error:
            raise self._failure(
                f"the mcp SDK is not installed ({error}); install flue-actors[mcp]"
            ) from None
        server = self.server
        info = Implementation(name="flue-actors", version=version("flue-actors"))
        if server.url is not None:
            return _http_client(server.url, dict(server.headers or {}), info)
        assert server.command is not None
        params = StdioServerParameters(
            command=server.command,
            args=list(server.args),
            env=dict(server.env) if server.env is not None else None,
            cwd=server.cwd,
        )
        return Client(params, client_info=info)

    async def _list(self, client: Client) -> list[Tool]:
        listed: list[Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return listed
            if cursor in seen:  # a server that pages forever would never let the run start
                raise self._failure(f"the server repeated the tools/list cursor {cursor!r}")
            seen.add(cursor)

    def _adapt(self, listed: Sequence[Tool]) -> list[MCPTool]:
        server = self.server
        by_name = {tool.name: tool for tool in listed}
        if server.allow is not None:
            missing = [name for name in server.allow if name not in by_name]
            if missing:
                raise self._failure(
                    "the server does not list the tools " + ", ".join(f'"{n}"' for n in missing)
                )
            listed = [by_name[name] for name in server.allow]
        adapted: dict[str, MCPTool] = {}
        for tool in listed:
            execution = tool.execution
            if execution is not None and execution.task_support == "required":
                continue  # needs MCP's task-based execution, which this client does not do
            name = mcp_tool_name(server.name, tool.name)
            if name in adapted:  # "a.b" and "a_b" both become "a_b"
                raise ToolNameConflictError(name=name, reason=f'another tool of "{server.name}"')
            spec = ToolSpec(name, _description(server.name, tool), _parameters(tool))
            adapted[name] = MCPTool(name, spec, tool.name, self)
        return list(adapted.values())

    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        client = self._client
        if client is None:
            lost = f": {self._lost}" if self._lost else ""
            return f'The MCP server "{self.server.name}" is no longer connected{lost}.', True
        result = await client.call_tool(tool, arguments, read_timeout_seconds=self.server.timeout)
        return render_result(result), bool(result.is_error)

    async def close(self) -> None:
        self._leave.set()
        holder = self._holder
        if holder is not None and not holder.done():
            if not self._ready.done():
                holder.cancel()  # still starting: nothing to leave gracefully yet
            await asyncio.wait([holder])
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: a start nobody awaited any more is not news


@asynccontextmanager
async def _http_client(
    url: str, headers: dict[str, str], info: Implementation
) -> AsyncIterator[Client]:
    """``Client`` over streamable HTTP with the definition's headers: the SDK's URL shortcut
    takes no headers, so the httpx client is made (and closed) here."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    # The SDK's own defaults: a response stream may stay open, so reads wait longer.
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, client_info=info) as client:
            yield client


class MCPConnections:
    """A run's connections, one per server definition, opened on first need."""

    def __init__(self) -> None:
        # Keyed by the definition itself (compared by identity): two agents naming one
        # mcp_tools(...) value share its connection.
        self._opened: dict[MCPTools, asyncio.Task[MCPConnection]] = {}

    async def tools(self, server: MCPTools) -> list[MCPTool]:
        """``server``'s tools, connecting first if this run has not yet. Concurrent first
        uses share one connection attempt; a failed attempt is tried again on the next use."""
        pending = self._opened.get(server)
        if pending is None or (pending.done() and pending.exception() is not None):
            pending = asyncio.get_running_loop().create_task(self._open(server))
            self._opened[server] = pending
        # Shielded: an operation aborted while a server starts must not cancel the start that
        # other operations may be waiting on too; the run's close still ends it.
        connection = await asyncio.shield(pending)
        return connection.tools

    @staticmethod
    async def _open(server: MCPTools) -> MCPConnection:
        connection = MCPConnection(server)
        await connection.open()
        return connection

    async def close(self) -> None:
        """Close every connection (stopping the stdio servers the run started)."""
        opened, self._opened = self._opened, {}
        for pending in opened.values():
            if not pending.done():
                pending.cancel()
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                await pending.result().close()
