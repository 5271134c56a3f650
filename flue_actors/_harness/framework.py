"""Framework tools: the ones the harness itself gives the model (``finish``, ``give_up``,
``task``, ``activate_skill``, ``read_skill_resource``).

They take raw JSON arguments and run with the turn's correlation, unlike user tools, and are
recorded with the same ``tool_start`` / ``tool`` events so the log does not tell them apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._clock import Clock
from .._events import error_payload
from .._messages import ToolResultMessage, UserContent
from ..models import ToolSpec
from .payloads import TurnCorrelation
from .sink import EventSink

__all__ = ["FrameworkTool", "ToolFailure", "run_framework_tool"]


class ToolFailure(Exception):
    """Raised by a framework tool to answer the model with an error result it can act on."""


@dataclass(frozen=True)
class FrameworkTool:
    name: str
    description: str
    parameters: dict[str, Any]
    # (arguments, turn correlation) -> the text the model reads back.
    run: Callable[[dict[str, Any], TurnCorrelation], Awaitable[str]]

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


async def run_framework_tool(
    tool: FrameworkTool,
    call: dict[str, Any],
    turn: TurnCorrelation,
    *,
    sink: EventSink,
    clock: Clock,
) -> ToolResultMessage:
    """Run one ``toolCall`` of a framework tool and return its ``toolResult`` message."""
    call_id = call["id"]
    started = clock.now_ms()
    sink.emit("tool_start", {"toolName": tool.name, "toolCallId": call_id, **turn})
    arguments = call.get("arguments")
    is_error = True
    try:
        text = await tool.run(arguments if isinstance(arguments, dict) else {}, turn)
        is_error = False
    except ToolFailure as failure:
        text = str(failure)
    except Exception as error:  # reported to the model, as a user tool's failure would be
        payload = error_payload(error)
        text = f"{payload['name']}: {payload['message']}"
    content: list[UserContent] = [{"type": "text", "text": text}]
    sink.emit(
        "tool",
        {
            "toolName": tool.name,
            "toolCallId": call_id,
            "isError": is_error,
            "result": {"content": content},
            "durationMs": clock.now_ms() - started,
            **turn,
        },
    )
    return {
        "role": "toolResult",
        "toolCallId": call_id,
        "toolName": tool.name,
        "content": content,
        "isError": is_error,
        "timestamp": clock.now_ms(),
    }
