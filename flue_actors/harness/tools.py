"""The tools a session's model may call, and how a call is run and recorded."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import pydantic

from ..clock import Clock
from ..definitions import ToolDefinition, check_tool_names, validation_issues
from ..errors import (
    ToolInputValidationError,
    ToolOutputSerializationError,
    ToolOutputValidationError,
)
from ..events import error_payload
from ..jsonvalue import NotJsonError, dumps, snapshot
from ..models import ToolSpec
from ..observation import ToolExecution, context_of, intercept, observing
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
        run_id: str = "",
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
        self._run_id = run_id
        self.specs = [tool_spec(tool.name, tool.description, tool.input) for tool in every]

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
        )

    async def call(self, call: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
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
        if tool is None:
            available = ", ".join(self._tools) or "none"
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
                        lambda: tool.run(args),
                    )
                    text = _render(tool, value)
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
