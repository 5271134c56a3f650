"""Structured results (reference 1.5): ``prompt(text, result=Schema)``.

The model gets two extra tools for the call, ``finish`` (arguments = the result's JSON schema)
and ``give_up`` (``{reason}``), and a footer asking it to call one. The first valid ``finish``
wins; invalid arguments come back as a tool error so the model can correct itself; a turn that
ends without either tool gets a reminder, up to a ceiling of attempts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import Any

import pydantic
from pydantic import TypeAdapter

from .._messages import ImageContent
from ..errors import ResultUnavailableError
from ..models import Usage
from .framework import FrameworkTool, ToolFailure
from .payloads import TurnCorrelation

__all__ = ["FOOTER", "MAX_FOLLOWUPS", "REMINDER", "ResultSpec", "run_with_result"]

MAX_FOLLOWUPS = 32
FOOTER = (
    "\n\nWhen you have the result, call the `finish` tool with it. "
    "If you cannot produce it, call the `give_up` tool with the reason."
)
REMINDER = (
    "You have not called `finish` or `give_up`. Call `finish` with the result, "
    "or `give_up` with the reason you cannot produce it."
)

# (text, images, per-call tools, stop check) -> (last assistant text, usage of the turns).
Loop = Callable[
    [str, list[ImageContent], Mapping[str, FrameworkTool], Callable[[], bool]],
    Awaitable[tuple[str, Usage]],
]


class ResultSpec:
    """A result type, its validator and the ``finish`` tool's parameters. Tool parameters must
    be an object, so any other schema is wrapped as ``{"result": <schema>}``."""

    def __init__(self, result: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(result)
        schema = dict(self.adapter.json_schema())
        self.wrapped = schema.get("type") != "object"
        if self.wrapped:
            # $defs must stay at the top so the nested schema's "#/$defs/..." refs resolve.
            defs = schema.pop("$defs", None)
            schema = {
                "type": "object",
                "properties": {"result": schema},
                "required": ["result"],
                **({"$defs": defs} if defs is not None else {}),
            }
        self.parameters = schema

    @staticmethod
    def of(result: Any) -> ResultSpec:
        """The spec of ``result``, built once per result type: a TypeAdapter and its JSON
        schema are definition work, not per-prompt work. A type that cannot be a dict key
        (rare: an unhashable annotation) gets a fresh spec each time."""
        try:
            return _spec_of(result)
        except TypeError:
            return ResultSpec(result)

    def validate(self, arguments: dict[str, Any]) -> Any:
        if self.wrapped:
            if "result" not in arguments:
                raise ToolFailure('Invalid result: the arguments must have a "result" field.')
            arguments = arguments["result"]
        try:
            return self.adapter.validate_python(arguments)
        except pydantic.ValidationError as error:
            raise ToolFailure(
                f"Invalid result: {error}\nCall `finish` again with corrected arguments."
            ) from None

    def to_wire(self, data: Any) -> Any:
        return self.adapter.dump_python(data, mode="json")


@lru_cache(maxsize=1024)
def _spec_of(result: Any) -> ResultSpec:
    return ResultSpec(result)


class _Attempt:
    """What the model settled on so far: nothing, a result, or giving up."""

    def __init__(self, spec: ResultSpec) -> None:
        self.spec = spec
        self.has_data = False
        self.data: Any = None
        self.gave_up: str | None = None

    def settled(self) -> bool:
        return self.has_data or self.gave_up is not None

    async def finish(self, arguments: dict[str, Any], _turn: TurnCorrelation) -> str:
        if self.settled():
            return "The result was already recorded."
        self.data = self.spec.validate(arguments)
        self.has_data = True
        return "Result recorded."

    async def give_up(self, arguments: dict[str, Any], _turn: TurnCorrelation) -> str:
        if self.settled():
            return "The result was already recorded."
        reason = arguments.get("reason")
        if not isinstance(reason, str):
            raise ToolFailure('Invalid arguments: "reason" must be a string.')
        self.gave_up = reason
        return "Understood."

    def tools(self) -> dict[str, FrameworkTool]:
        finish = FrameworkTool(
            "finish", "Submit the final result.", self.spec.parameters, self.finish
        )
        give_up = FrameworkTool(
            "give_up",
            "Give up when the result cannot be produced, saying why.",
            {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
            self.give_up,
        )
        return {"finish": finish, "give_up": give_up}


async def run_with_result(
    loop: Loop, text: str, images: list[ImageContent], spec: ResultSpec
) -> tuple[Any, Usage]:
    """Run the agent until it calls ``finish`` (returns the validated data and the usage of
    every turn) or ``give_up`` / the ceiling (raises :class:`ResultUnavailableError`)."""
    attempt = _Attempt(spec)
    tools = attempt.tools()
    usage = Usage()
    message, attached = text + FOOTER, images
    assistant_text = ""
    for _ in range(MAX_FOLLOWUPS + 1):
        assistant_text, used = await loop(message, attached, tools, attempt.settled)
        usage += used
        if attempt.has_data:
            return attempt.data, usage
        if attempt.gave_up is not None:
            raise ResultUnavailableError(attempt.gave_up, assistant_text)
        message, attached = REMINDER, []
    ceiling = f"Agent did not call `finish` or `give_up` after {MAX_FOLLOWUPS + 1} attempts."
    raise ResultUnavailableError(ceiling, assistant_text, message=ceiling)
