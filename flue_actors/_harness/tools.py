"""The tools a session's model may call, and how a call is run and recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import pydantic

from .._clock import Clock
from .._definitions import ToolDefinition, check_tool_names, validation_issues
from .._definitions.tools import own_tool_names
from .._events import error_payload
from .._jsonvalue import NotJsonError, dumps, snapshot
from .._mcp import MCPTools
from .._messages import ToolResultMessage, UserContent
from .._observation import ToolExecution, context_of, intercept, observing
from ..errors import (
    ToolInputValidationError,
    ToolNameConflictError,
    ToolOutputSerializationError,
    ToolOutputValidationError,
)
from ..models import ToolSpec
from .mcp_connection import MCPConnections, MCPTool
from .replay import replay_of
from .sink import EventSink
from .workspace_tools import WORKSPACE_TOOLS, Workspace, WorkspaceTool

__all__ = ["ToolBox", "tool_spec"]


@lru_cache(maxsize=4096)
def tool_spec(name: str, description: str, input: type[pydantic.BaseModel]) -> ToolSpec:
    """A tool as the model sees it. Its JSON schema depends only on the definition, yet
    generating it costs more than the rest of a fake-model run, so it is built once per
    (name, description, input class) and shared by every run; the spec is never mutated."""
    return ToolSpec(name, description, input.model_json_schema())


_Table = tuple[dict[str, ToolDefinition], list[ToolSpec]]
# The built-in tools' name table and specs, made once: every run's tool box starts from them.
_BUILTIN: _Table = (
    {tool.name: tool for tool in WORKSPACE_TOOLS},
    [tool_spec(tool.name, tool.description, tool.input) for tool in WORKSPACE_TOOLS],
)
_NO_TOOLS: _Table = ({}, [])


class ToolBox:
    """The tools of one agent. A failing or mistyped call becomes an error result the model
    can read and correct, never a failed operation."""

    def __init__(
        self,
        tools: Sequence[ToolDefinition | MCPTools],
        *,
        workspace: Workspace | None = None,
        sink: EventSink,
        clock: Clock,
        run_id: str = "",
        mcp: MCPConnections | None = None,
    ) -> None:
        # ``tools`` are the agent's own (its tools, its actions as tools, a call's tools=, its
        # MCP servers), held to the same name rule as at definition; ``workspace`` where the
        # built-in tools work (None: no built-in tools).
        self._own = tools
        self._workspace = workspace
        builtin = _BUILTIN if workspace is not None else _NO_TOOLS
        if tools:
            check_tool_names(own_tool_names(tools))
            own = [tool for tool in tools if isinstance(tool, ToolDefinition)]
            self._tools = {**builtin[0], **{tool.name: tool for tool in own}}
            self.specs = [*builtin[1], *(tool_spec(t.name, t.description, t.input) for t in own)]
            # MCP servers' tools are known only once the run connects to them (ready()).
            self._servers = [tool for tool in tools if isinstance(tool, MCPTools)]
        else:
            # The common case shares one name table and spec list (never changed in place).
            self._tools, self.specs = builtin
            self._servers = []
        self._mcp_tools: dict[str, MCPTool] = {}
        self._mcp = mcp
        self._connected = not self._servers
        self._sink = sink
        self._clock = clock
        self._run_id = run_id

    def extended(self, tools: Sequence[ToolDefinition]) -> ToolBox:
        """These tools and a call's ``tools=``, under the same name rule."""
        if not tools:
            return self
        return ToolBox(
            [*self._own, *tools],
            workspace=self._workspace,
            sink=self._sink,
            clock=self._clock,
            run_id=self._run_id,
            mcp=self._mcp,
        )

    async def ready(self) -> None:
        """Connect to the agent's MCP servers (once per run) and add their tools; a server
        that cannot be reached fails with MCPConnectionError, a tool name taken twice with
        ToolNameConflictError. Without MCP servers this returns at once."""
        if self._connected:
            return
        if self._mcp is None:
            raise RuntimeError("This agent's MCP tools have no connections to come from.")
        found: dict[str, MCPTool] = {}
        for server in self._servers:
            for tool in await self._mcp.tools(server):
                if tool.name in self._tools or tool.name in found:
                    raise ToolNameConflictError(name=tool.name)
                found[tool.name] = tool
        if not self._connected:  # two sessions may have been connecting at once
            self._mcp_tools = found
            self.specs = [*self.specs, *(tool.spec for tool in found.values())]
            self._connected = True

    async def call(self, call: dict[str, Any], turn: Mapping[str, Any]) -> ToolResultMessage:
        """Run one ``toolCall`` block and return its ``toolResult`` message."""
        name, call_id = call["name"], call["id"]
        started = self._clock.now_ms()
        arguments = call.get("arguments") or {}
        self._sink.emit(
            "tool_start",
            {"toolName": name, "toolCallId": call_id, **turn},
            detail={"args": arguments} if observing() else None,
        )
        is_error = True
        tool = self._tools.get(name)
        remote = self._mcp_tools.get(name) if tool is None else None
        recorded = None
        replay = replay_of(self._sink)
        # An MCP call, like an agent's own tool, reaches outside the run: answered from the log.
        answer_from_log = remote is not None or (tool is not None and not tool.rerun_on_replay)
        if replay is not None and answer_from_log:
            recorded = replay.answer(
                "tool",
                f"tool {name} toolCallId={call_id}",
                lambda event: event.get("toolCallId") == call_id,
                turn,
            )
        content: list[UserContent]
        if recorded is not None:
            text = ""
            content = (recorded.get("result") or {}).get("content") or []
            is_error = bool(recorded.get("isError"))
        elif remote is not None:
            text, is_error = await self._call_remote(remote, call_id, call.get("arguments"), turn)
        elif tool is None:
            available = ", ".join([*self._tools, *self._mcp_tools]) or "none"
            text = f'Tool "{name}" is not available. Available tools: {available}.'
        else:
            try:
                args = tool.input.model_validate(arguments)
            except pydantic.ValidationError as error:
                issues = validation_issues(error)
                text = ToolInputValidationError(tool=name, issues=issues).message
            else:
                try:
                    value = await intercept(
                        ToolExecution(call_id, name),
                        context_of(self._run_id, turn),
                        self._work(tool, args),
                    )
                    text = _render(tool, value)
                    is_error = False
                except Exception as error:  # reported to the model, which may try again
                    failure = error_payload(error)
                    text = f"{failure['name']}: {failure['message']}"
        if recorded is None:
            content = [{"type": "text", "text": text}]
        self._sink.emit(
            "tool",
            {
                "toolName": name,
                "toolCallId": call_id,
                "isError": is_error,
                "result": {"content": content},
                "durationMs": self._clock.now_ms() - started,
                **turn,
            },
        )
        return {
            "role": "toolResult",
            "toolCallId": call_id,
            "toolName": name,
            "content": content,
            "isError": is_error,
            "timestamp": self._clock.now_ms(),
        }

    def _work(self, tool: ToolDefinition, args: pydantic.BaseModel) -> Callable[[], Awaitable[Any]]:
        if isinstance(tool, WorkspaceTool):
            return lambda: tool.run(self._workspace, args)
        return lambda: tool.run(args)

    async def _call_remote(
        self, tool: MCPTool, call_id: str, arguments: Any, turn: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """(text, is_error) of an MCP tool call; the server validates the arguments."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return f"Invalid arguments for tool {tool.name}: expected an object.", True
        try:
            return await intercept(
                ToolExecution(call_id, tool.name),
                context_of(self._run_id, turn),
                lambda: tool.call(arguments),
            )
        except Exception as error:  # reported to the model, as a local tool's failure is
            failure = error_payload(error)
            return f"{failure['name']}: {failure['message']}", True


@lru_cache(maxsize=1024)
def _output_adapter(output: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(output)


def _render(tool: ToolDefinition, value: Any) -> str:
    """The tool's result as the model reads it: text as it is, anything else as JSON, checked
    against the tool's ``output`` type when it declares one."""
    if tool.output is not None:
        adapter = _output_adapter(tool.output)
        try:
            value = adapter.validate_python(value)
        except pydantic.ValidationError as error:
            raise ToolOutputValidationError(
                tool=tool.name, issues=validation_issues(error)
            ) from None
        value = adapter.dump_python(value, mode="json")
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return dumps(snapshot(value))
    except NotJsonError as error:
        raise ToolOutputSerializationError(tool=tool.name, reason=str(error)) from None
