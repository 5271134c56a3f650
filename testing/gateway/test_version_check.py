"""The read path's version check without parsing (``shared_reads.is_current_version``): it may
say "this version" only when parsing would say so, and says it for every event the writer stores."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flue_actors._jsonvalue import dumps, loads
from flue_actors.errors import ProductEventVersionError
from flue_actors.gateway._shared_reads import checked_json, is_current_version
from flue_actors.store import StoredEvent, StreamPage

# Keys and texts that look like the envelope, so nested objects and strings imitate it.
_KEYS = st.sampled_from(["v", "eventIndex", "timestamp", "runId", "type", "a", '"v"', ',"v":3,'])
_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['","v":3,"eventIndex":1,"timestamp":"t"}', '\\"v\\":3', "}", '"', "\\"]),
)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(st.dictionaries(_KEYS, _VALUE, max_size=5))
    if draw(st.booleans()):
        # The writer's envelope, last and in its order, as it ends every stored event.
        for key in ("v", "eventIndex", "timestamp", "runId"):
            event.pop(key, None)
        event.update(v=3, eventIndex=draw(st.integers(0, 99)), timestamp="2026-12-01T00:00:00Z")
        if draw(st.booleans()):
            event["runId"] = "run_01M8SA0V4P6W264NTEWZGV86V7"
    else:
        # Envelope fields in other orders, with other values.
        for key in draw(st.permutations(["v", "eventIndex", "timestamp", "runId"])):
            if draw(st.booleans()):
                event.pop(key, None)
                event[key] = draw(
                    st.sampled_from([3, 3, 4, "3", 3.0, None])
                    if key == "v"
                    else st.one_of(st.integers(0, 99), _TEXT)
                )
    if draw(st.booleans()):
        # The envelope-like event nested last in an object of another version (or none).
        outer: dict[str, Any] = {"type": "outer"}
        if draw(st.booleans()):
            outer["v"] = draw(st.sampled_from([4, "3", None]))
        outer[draw(_KEYS)] = event
        return outer
    return event


@given(_events())
def test_the_fast_check_says_current_only_when_parsing_does(event: dict[str, Any]) -> None:
    raw = dumps(event)
    if is_current_version(raw):
        assert loads(raw).get("v") == 3


def _writer_event(index: int, run_id: str | None, body: dict[str, Any]) -> str:
    event = {**body, "v": 3, "eventIndex": index, "timestamp": "2026-12-01T17:21:44.092Z"}
    if run_id is not None:
        event["runId"] = run_id
    return dumps(event)


@given(st.dictionaries(_KEYS, _VALUE, max_size=4), st.integers(0, 10**6), st.booleans())
def test_every_event_as_the_writer_stores_it_is_current_without_parsing(
    body: dict[str, Any], index: int, with_run_id: bool
) -> None:
    for key in ("v", "eventIndex", "timestamp", "runId"):
        body.pop(key, None)
    body = {"type": "log", **body}  # every event has its type first
    raw = _writer_event(index, "run_01M8SA0V4P6W264NTEWZGV86V7" if with_run_id else None, body)
    assert is_current_version(raw)


def test_an_event_of_another_version_still_fails_the_read() -> None:
    current = StoredEvent(
        "0000000000000000_0000000000000000", 0, _writer_event(0, None, {"type": "run_start"})
    )
    other = StoredEvent("0000000000000000_0000000000000001", 1, dumps({"type": "x", "v": 4}))
    assert checked_json(StreamPage([current], current.offset, True, False)).startswith("[{")
    with pytest.raises(ProductEventVersionError):
        checked_json(StreamPage([current, other], other.offset, True, False))
