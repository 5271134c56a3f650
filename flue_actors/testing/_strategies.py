"""Hypothesis strategies for workflow tests.

``inputs_for(workflow)`` draws inputs a workflow accepts, as the JSON a caller would send, from
its input schema (pydantic models, TypedDicts and dataclasses, through ``st.from_type``);
``json_values()`` draws arbitrary plain JSON, for invariants that must hold for any payload.
Field constraints beyond types (``Field(min_length=...)``) are honoured by filtering, so a schema
whose constraints are rarely met by chance should be given a strategy of its own.
"""

from __future__ import annotations

from typing import Any

import pydantic
from hypothesis import strategies as st
from pydantic import TypeAdapter

from .._definitions import WorkflowDefinition
from .._jsonvalue import UNSET, JsonValue, Unset

__all__ = ["inputs_for", "json_values"]


def json_values(*, max_leaves: int = 10) -> st.SearchStrategy[JsonValue]:
    """Plain JSON: null, booleans, integers, finite floats, text, lists and objects."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**53), max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def inputs_for(workflow: WorkflowDefinition) -> st.SearchStrategy[JsonValue | Unset]:
    """Inputs ``workflow`` accepts, as JSON. A workflow without an input schema takes none."""
    schema = workflow.action.input
    if schema is None:
        return st.just(UNSET)
    adapter: TypeAdapter[Any] = TypeAdapter(schema)

    def valid(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except pydantic.ValidationError:
            return False
        return True

    def as_json(value: Any) -> JsonValue:
        dumped: JsonValue = adapter.dump_python(value, mode="json")
        return dumped

    return st.from_type(schema).filter(valid).map(as_json)
