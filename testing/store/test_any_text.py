"""Any text is stored and read back; an event that is not JSON data never leaves a run active
(issue 9, "any bytes in, no damage"), on every store backend.

Lone surrogates, NUL and every other code point are escaped by the serializer (``\\ud800``), so
they fit SQLite's and PostgreSQL's ``text`` and come back as the same string. A high surrogate
followed by a low one reads back as the character they encode (JSON and JavaScript strings cannot
tell the two apart), so expectations are compared through :func:`as_utf16`.

An event that is not JSON data at all (a non-finite number, an object) is the one thing a store
refuses. :class:`RunStream` then writes what precedes it and ends the run errored
(``event_not_storable``) at the next index: no gap, stream closed, record terminal.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pytest

from flue_actors._clock import StepClock
from flue_actors._events import error_payload
from flue_actors._jsonvalue import dumps, loads
from flue_actors._runtime.recovery import end_interrupted_run
from flue_actors._runtime.run_stream import RunStream
from flue_actors.store import EventStore, run_stream

from .conftest import admission, iso, make_run_id, read_all

# Every kind of string that has broken a serializer, a driver or a column somewhere.
AWKWARD: Final = [
    "\ud800",
    "\udbff\udbff",
    "\udc00x",
    "x\udfff",
    "\ud83d\ude00",  # a pair as two code points: reads back as the one character
    "😀",
    "\x00",
    "a\x00b\x01c\x01\x02",
    "\x7f\x1b[31m",
    "\u2028\u2029",
    "\ufeff",
    "\r\n\r",
    '"\\',
    "\U0010ffff",
    "é" * 3,
]


def as_utf16(value: Any) -> Any:
    """``value`` with every string as a JSON reader returns it: surrogate pairs joined."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, list):
        return [as_utf16(item) for item in value]
    if isinstance(value, dict):
        return {as_utf16(key): as_utf16(item) for key, item in value.items()}
    return value


def awkward_value() -> dict[str, Any]:
    return {text: [text, {"k": text}] for text in AWKWARD}


def test_dumps_escapes_lone_surrogates_and_keeps_other_text_as_it_is() -> None:
    text = dumps({"\ud800": "é\x00\udfff😀"})
    assert text == '{"\\ud800":"é\\u0000\\udfff😀"}'
    text.encode("utf-8")  # always encodable
    assert loads(text) == {"\ud800": "é\x00\udfff😀"}
    assert loads(dumps("\ud83d\ude00")) == "😀"


async def admit(store: EventStore, n: int, run_input: Any) -> str:
    run_id = make_run_id(n)
    assert await store.admit_run(admission(run_id, run_input=run_input, workflow_name="\x00wf\x01"))
    return run_id


def start_payload(run_id: str, run_input: Any) -> dict[str, Any]:
    return {
        "runId": run_id,
        "workflowName": "\x00wf\x01",
        "startedAt": iso(0),
        "input": run_input,
    }


async def test_awkward_text_everywhere_is_stored_and_read_back(store: EventStore) -> None:
    value = awkward_value()
    run_id = await admit(store, 1, value)
    stream = RunStream(store, run_id, StepClock())
    stream.emit("run_start", start_payload(run_id, value))
    for text in AWKWARD:
        stream.emit("log", {"level": "info", "message": text, "attributes": {text: text}})
    await stream.flush()
    end = {"runId": run_id, "result": value, "isError": False, "durationMs": 1}
    await stream.end("run_end", end)

    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["eventIndex"] for event in events] == list(range(len(AWKWARD) + 2))
    assert events[0]["input"] == as_utf16(value)
    assert [event["message"] for event in events[1:-1]] == as_utf16(AWKWARD)
    assert events[-1]["result"] == as_utf16(value)
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "completed"
    assert record.workflow_name == "\x00wf\x01"
    assert record.input == as_utf16(value)
    assert record.result == as_utf16(value)
    meta = await store.stream_meta(run_stream(run_id))
    assert meta is not None
    assert meta.closed


@pytest.mark.parametrize("batch_starts_with_it", [False, True])
async def test_an_unstorable_event_ends_the_run_errored_without_a_gap(
    store: EventStore, batch_starts_with_it: bool
) -> None:
    run_id = await admit(store, 2, None)
    stream = RunStream(store, run_id, StepClock())
    stream.emit("run_start", start_payload(run_id, None))
    stream.emit("log", {"level": "info", "message": "kept"})
    if batch_starts_with_it:
        await stream.flush()
    stream.emit("log", {"level": "info", "message": "not JSON", "attributes": {"x": math.nan}})
    stream.emit("log", {"level": "info", "message": "after the bad one"})
    await stream.flush()
    assert stream.failure is not None
    stream.emit("log", {"level": "info", "message": "emitted after the failure"})
    end: dict[str, Any] = {"runId": run_id, "result": None, "isError": True, "durationMs": 1}
    end["error"] = error_payload(stream.failure)
    ended = await stream.end("run_end", end)

    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["type"] for event in events] == ["run_start", "log", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2]
    assert ended["eventIndex"] == 2
    assert events[-1]["error"]["type"] == "event_not_storable"
    assert events[-1]["error"]["meta"] == {"eventType": "log", "eventIndex": 2}
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "errored"
    meta = await store.stream_meta(run_stream(run_id))
    assert meta is not None
    assert meta.closed


async def test_an_unstorable_run_end_is_replaced_by_an_errored_one(store: EventStore) -> None:
    run_id = await admit(store, 3, None)
    stream = RunStream(store, run_id, StepClock())
    stream.emit("run_start", start_payload(run_id, None))
    stream.emit("log", {"level": "info", "message": "\ud800"})
    end: dict[str, Any] = {"runId": run_id, "result": None, "isError": True, "durationMs": 7}
    end["error"] = {"name": "Oops", "message": "meta is not JSON", "meta": {"at": object()}}
    ended = await stream.end("run_end", end)

    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["type"] for event in events] == ["run_start", "log", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2]
    assert events[-1] == ended
    assert ended["isError"] is True
    assert ended["durationMs"] == 7
    assert ended["error"]["type"] == "event_not_storable"
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "errored"


async def test_recovery_ends_a_run_whose_input_and_events_hold_awkward_text(
    store: EventStore,
) -> None:
    """``runs recover`` folds the record (input included) in the append that ends the run: it
    must manage whatever text the run was admitted with."""
    value = awkward_value()
    run_id = await admit(store, 4, value)
    stream = RunStream(store, run_id, StepClock())
    stream.emit("run_start", start_payload(run_id, value))
    stream.emit("log", {"level": "info", "message": "\udfff\x00"})
    await stream.flush()  # its owner dies here

    assert await end_interrupted_run(store, run_id, StepClock())
    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["type"] for event in events] == ["run_start", "log", "run_resume", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2, 3]
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "errored"
    assert record.input == as_utf16(value)
