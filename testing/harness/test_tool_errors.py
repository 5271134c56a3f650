"""Flue's tool error types (reference 1.23): ``tool_input_validation`` for arguments that fail a
tool's ``input``, ``tool_output_validation`` for a result that fails its declared ``output``, and
``tool_output_serialization`` for a result that is not JSON. Each reaches the model as the
tool's error result (the run goes on, and the model may call again)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import DefinitionError, define_tool
from flue_actors.errors import (
    ToolInputValidationError,
    ToolOutputSerializationError,
    ToolOutputValidationError,
)
from flue_actors.models import ModelRequest
from flue_actors.testing import FakeModel

from .support import make_harness


class Point(BaseModel):
    x: int
    y: int


def _tool(output: Any, value: Any) -> Any:
    async def run(args: Point) -> Any:
        return value

    return define_tool(name="point", description="A point.", input=Point, run=run, output=output)


async def _call(tool: Any, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Let the model call ``tool`` once; the tool result it got back, and the ``tool`` event."""
    fake = FakeModel().reply("", tool_calls=[("point", arguments)]).reply("done")
    harness, sink = make_harness(fake, tools=[tool])
    session = await harness.session()
    assert (await session.prompt("go")).text == "done"
    second: ModelRequest = fake.requests[1]
    [result] = [m for m in second.messages if m["role"] == "toolResult"]
    return result, sink.of("tool")[0]


def _text(result: dict[str, Any]) -> str:
    text: str = result["content"][0]["text"]
    return text


async def test_arguments_that_fail_the_input_model_get_flues_message() -> None:
    result, event = await _call(_tool(None, "ok"), {"x": "left", "y": 2})
    expected = ToolInputValidationError(
        tool="point",
        issues=[
            {
                "message": "Input should be a valid integer, unable to parse string as an integer",
                "path": ["x"],
            }
        ],
    )
    assert result["isError"] is True
    assert _text(result) == expected.message
    assert _text(result) == (
        'Arguments for tool "point" do not match the required schema: Input should be a valid '
        "integer, unable to parse string as an integer (at x). Call the tool again with "
        "corrected arguments."
    )
    assert event["isError"] is True
    assert expected.type == "tool_input_validation"
    assert expected.meta == {"tool": "point", "issues": expected.issues}


async def test_a_result_that_fails_the_declared_output_is_an_error_result() -> None:
    result, event = await _call(_tool(Point, {"x": 1}), {"x": 1, "y": 2})
    assert result["isError"] is True
    assert _text(result) == (
        'ToolOutputValidationError: Tool "point" output does not match the required schema.'
    )
    assert event["isError"] is True


async def test_a_result_that_passes_the_declared_output_is_sent_as_its_json() -> None:
    result, _ = await _call(_tool(Point, {"x": "1", "y": 2}), {"x": 1, "y": 2})
    assert result["isError"] is False
    assert _text(result) == '{"x":1,"y":2}'  # validated (the string "1" is the integer 1)
    listed, _ = await _call(_tool(list[Point], [Point(x=1, y=2)]), {"x": 1, "y": 2})
    assert _text(listed) == '[{"x":1,"y":2}]'


async def test_a_result_that_is_not_json_is_an_error_result() -> None:
    result, event = await _call(_tool(None, {"when": object()}), {"x": 1, "y": 2})
    assert result["isError"] is True
    assert _text(result).startswith(
        'ToolOutputSerializationError: Tool "point" output is not JSON-serializable: '
    )
    assert event["isError"] is True


def test_the_output_errors_carry_flues_types_and_meta() -> None:
    invalid = ToolOutputValidationError(tool="t", issues=[{"message": "bad", "path": ["a"]}])
    assert (invalid.type, invalid.meta) == (
        "tool_output_validation",
        {"tool": "t", "issues": [{"message": "bad", "path": ["a"]}]},
    )
    unserializable = ToolOutputSerializationError(tool="t", reason="a set")
    assert (unserializable.type, unserializable.meta) == (
        "tool_output_serialization",
        {"tool": "t"},
    )


def test_an_output_pydantic_cannot_validate_is_refused_when_defined() -> None:
    with pytest.raises(DefinitionError, match=r"define_tool\(\{ output \}\) must be a type"):
        _tool(object(), None)


_WORDS = st.text(alphabet="abcxyz_0123 ", min_size=1, max_size=12).map(str.strip).filter(bool)
_ISSUE = re.compile(r"^(?P<message>.+?)(?: \(at (?P<path>[^()]+)\))?$")


@given(
    st.lists(
        st.fixed_dictionaries(
            {"message": _WORDS},
            optional={
                "path": st.lists(
                    st.one_of(st.from_regex(r"[a-z_]{1,5}", fullmatch=True), st.integers(0, 99)),
                    max_size=3,
                )
            },
        ),
        min_size=1,
        max_size=4,
    )
)
def test_the_input_message_lists_every_issue_and_where_in_order(
    issues: list[dict[str, Any]],
) -> None:
    message = ToolInputValidationError(tool="t", issues=issues).message
    prefix = 'Arguments for tool "t" do not match the required schema: '
    suffix = ". Call the tool again with corrected arguments."
    assert message.startswith(prefix)
    assert message.endswith(suffix)
    parts = [_ISSUE.match(part) for part in message[len(prefix) : -len(suffix)].split("; ")]
    recovered = [(m["message"], m["path"]) for m in parts if m is not None]
    assert recovered == [
        (i["message"], ".".join(map(str, i["path"])) if i.get("path") else None) for i in issues
    ]
