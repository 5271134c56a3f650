"""A small MCP server for the tests, built with the SDK's ``MCPServer`` (mcp 1.x's FastMCP).

Run as a script it serves over stdio (``python notes_server.py``), as a run's
``mcp_tools(command=...)`` starts it; :func:`http_app` serves the same tools over streamable
HTTP, for the tests to run under uvicorn. Its tools cover what the harness must handle: a plain
result, structured content, a failing tool, and the server's process id (to check that the run
stops the process it started).
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def make_server() -> MCPServer:
    server: MCPServer = MCPServer("notes")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Say something back.")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Always fails.")
    def broken(reason: str) -> str:
        raise ToolError(f"broken on purpose: {reason}")

    @server.tool(description="Never answers (to check timeouts and aborts).")
    async def hang() -> str:
        await anyio.Event().wait()
        return "unreachable"

    @server.tool(description="The server process's id.")
    def pid() -> str:
        return str(os.getpid())

    if os.environ.get("NOTES_CLASH") == "1":
        # A second tool whose name differs from "echo" only by a character a model API does
        # not accept in tool names: both become mcp__notes__echo.
        server.add_tool(echo, name="echo!", description="Echo again.")

    return server


def http_app(*, token: str | None = None) -> Any:
    """The server's streamable-HTTP ASGI app at ``/mcp``; with ``token``, a request without
    ``Authorization: Bearer <token>`` gets 401 (to check that ``headers=`` reach the server)."""
    app = make_server().streamable_http_app()
    if token is None:
        return app

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    make_server().run()
