"""The tools a session's model may call, and how a call is run and recorded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import pydantic

from ..clock import Clock
from ..definitions import ToolDefinition, check_tool_names
from ..events import error_payload
from ..jsonvalue import NotJsonError, dumps, snapshot
from ..models import ToolSpec
from .sink import EventSink

__all__ = ["ToolBox", "tool_spec"]


@lru_cache(maxsize=4096)
def tool_spec(name: str, description: str, input: type[pydantic.BaseModel]) -> ToolSpec:
    """A tool as the model sees it. Its JSON schema depends only on the definition, yet
    generating it costs more than the rest of a fake-model run, so it is built once per
    (name, description, input class) and shared by every run; the spec is never mutated."""
    return ToolSpec(name, description, input.model_json_schema())


class ToolBox:
    """The tools of one agent. A failing or mistyped call becomes an error result the model
    can read and correct, never a failed operation."""

    def __init__(
        self,
        tools: Sequence[ToolDefinition],
        *,
        workspace: Sequence[ToolDefinition] = (),
        sink: EventSink,
        clock: Clock,
    ) -> None:
        # ``tools`` are the agent's own (its tools, its actions as tools, a call's tools=),
        # held to the same name rule as at definition; ``workspace`` the built-in ones.
        check_tool_names(tool.name for tool in tools)
        self._own = list(tools)
        self._workspace = list(workspace)
        every = [*workspace, *tools]
        self._tools = {tool.name: tool for tool in every}
        self._sink = sink
        self._clock = clock
        self.specs = [tool_spec(tool.name, tool.description, tool.input) for tool in every]

    def extended(self, tools: Sequence[ToolDefinition]) -> ToolBox:
        """These tools and a call's ``tools=``, under the same name rule."""
        if not tools:
            return self
        return ToolBox(
            [*self._own, *tools], workspace=self._workspace, sink=self._sink, clock=self._clock
        )

    async def call(self, call: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
        """Run one ``toolCall`` block and return its ``toolResult`` message."""
        name, call_id = call["name"], call["id"]
        started = self._clock.now_ms()
        self._sink.emit("tool_start", {"toolName": name, "toolCallId": call_id, **turn})
        is_error = True
        tool = self._tools.get(name)
        if tool is None:
            available = ", ".join(self._tools) or "none"
            text = f'Tool "{name}" is not available. Available tools: {available}.'
        else:
            try:
                args = tool.input.model_validate(call.get("arguments") or {})
            except pydantic.ValidationError as error:
                text = f"Invalid arguments for tool {name}: {error}"
            else:
                try:
                    text = _render(await tool.run(args))
                    is_error = False
                except Exception as error:  # reported to the model, which may try again
                    failure = error_payload(error)
                    text = f"{failure['name']}: {failure['message']}"
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


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return dumps(snapshot(value))
    except NotJsonError:
        return json.dumps(value, default=repr)
