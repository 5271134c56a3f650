"""A run's terminal append: the events still pending go with ``run_end``, on every store backend.

:meth:`RunStream.end` takes whatever the flusher has not taken yet into its own append (after an
append already in flight, so the log keeps its order), and a run of ``summarize`` on the fake
model is written in one append. When the store fails that append, nothing of it was written and
it is tried once more: with the run's own error, or errored with the store's failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from flue_actors import Runtime
from flue_actors._clock import StepClock
from flue_actors._runtime import WorkflowRegistry
from flue_actors._runtime.run_stream import FLUSH_TURNS, RunStream
from flue_actors.errors import RunStoreUnavailableError, StreamClosedError
from flue_actors.models import ModelRegistry
from flue_actors.store import EventStore, run_stream

from .conftest import admission, iso, make_run_id, read_all

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


class Appends:
    """``store`` as a run's stream sees it, each append's event types recorded; the first
    ``fail_ends`` appends that close the stream fail as an unreachable store would, and with
    ``gate`` set each append first waits for it."""

    def __init__(self, store: EventStore, *, fail_ends: int = 0) -> None:
        self.store = store
        self.batches: list[list[str]] = []
        self.fail_ends = fail_ends
        self.gate: asyncio.Event | None = None

    async def append(
        self, path: str, events: Sequence[dict[str, Any]], **options: Any
    ) -> list[str]:
        self.batches.append([str(event["type"]) for event in events])
        if self.gate is not None:
            await self.gate.wait()
        if options.get("close") and self.fail_ends:
            self.fail_ends -= 1
            raise RunStoreUnavailableError("connection refused")
        return await self.store.append(path, events, **options)


async def _stream(store: EventStore, n: int, appends: Appends) -> tuple[str, RunStream]:
    run_id = make_run_id(n)
    assert await store.admit_run(admission(run_id, workflow_name="wf"))
    stream = RunStream(cast(EventStore, appends), run_id, StepClock())
    start = {"runId": run_id, "workflowName": "wf", "startedAt": iso(0)}
    stream.emit("run_start", start)
    return run_id, stream


def _end(run_id: str, *, error: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"runId": run_id, "result": None if error else "ok"}
    payload["isError"] = error is not None
    if error is not None:
        payload["error"] = error
    payload["durationMs"] = 5
    return payload


async def test_the_pending_events_go_with_run_end_in_one_append(store: EventStore) -> None:
    appends = Appends(store)
    run_id, stream = await _stream(store, 1, appends)
    stream.emit("log", {"level": "info", "message": "one"})
    for _ in range(FLUSH_TURNS - 1):  # the flusher has not taken them yet
        await asyncio.sleep(0)
    stream.emit("log", {"level": "info", "message": "two"})
    await stream.end("run_end", _end(run_id))

    assert appends.batches == [["run_start", "log", "log", "run_end"]]
    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["eventIndex"] for event in events] == [0, 1, 2, 3]
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "completed"


async def test_an_append_in_flight_is_written_before_the_terminal_one(store: EventStore) -> None:
    appends = Appends(store)
    appends.gate = asyncio.Event()
    run_id, stream = await _stream(store, 2, appends)
    for _ in range(FLUSH_TURNS + 1):  # the flusher takes run_start and waits on the store
        await asyncio.sleep(0)
    assert appends.batches == [["run_start"]]
    stream.emit("log", {"level": "info", "message": "after"})
    ending = asyncio.ensure_future(stream.end("run_end", _end(run_id)))
    for _ in range(FLUSH_TURNS + 1):
        await asyncio.sleep(0)
    assert not ending.done()
    assert appends.batches == [["run_start"]]
    appends.gate.set()
    ended = await ending

    assert appends.batches == [["run_start"], ["log", "run_end"]]
    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["type"] for event in events] == ["run_start", "log", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2]
    assert events[-1] == ended


async def test_a_failed_terminal_append_ends_the_run_errored_with_the_failure(
    store: EventStore,
) -> None:
    appends = Appends(store, fail_ends=1)
    run_id, stream = await _stream(store, 3, appends)
    stream.emit("log", {"level": "info", "message": "kept"})
    ended = await stream.end("run_end", _end(run_id))

    assert appends.batches == [["run_start", "log", "run_end"]] * 2
    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert [event["type"] for event in events] == ["run_start", "log", "run_end"]
    assert events[-1] == ended
    assert ended["isError"] is True
    assert ended["result"] is None
    assert ended["error"]["type"] == "run_store_unavailable"
    assert ended["durationMs"] == 5
    assert ended["eventIndex"] == 2
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "errored"


async def test_a_failed_terminal_append_keeps_the_runs_own_error(store: EventStore) -> None:
    appends = Appends(store, fail_ends=1)
    run_id, stream = await _stream(store, 4, appends)
    own = {"type": "workflow_error", "name": "ValueError", "message": "bad input"}
    ended = await stream.end("run_end", _end(run_id, error=own))

    assert appends.batches == [["run_start", "run_end"]] * 2
    events = [event.data for event in await read_all(store, run_stream(run_id))]
    assert events[-1] == ended
    assert ended["error"] == own


async def test_a_second_failure_leaves_the_run_to_recovery(store: EventStore) -> None:
    appends = Appends(store, fail_ends=2)
    run_id, stream = await _stream(store, 5, appends)
    with pytest.raises(RunStoreUnavailableError):
        await stream.end("run_end", _end(run_id))
    assert len(appends.batches) == 2
    assert await read_all(store, run_stream(run_id)) == []
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "active"


async def test_a_summarize_run_on_the_fake_model_is_one_append(store: EventStore) -> None:
    # The runtime's own store, with its appends counted: every other call goes to it as is.
    appends = Appends(cast(EventStore, SimpleNamespace(append=store.append)))
    store.append = appends.append  # type: ignore[method-assign]
    registry = WorkflowRegistry.discover(WORKFLOWS)
    runtime = Runtime(registry, store=store, models=ModelRegistry(override="fake/echo"), env={})
    async with runtime:
        receipt = await runtime.invoke("summarize", {"text": "one append"})
        record = await runtime.wait(receipt.run_id)
    assert record.status == "completed", record.error
    assert len(appends.batches) == 1, appends.batches
    assert appends.batches[0][0] == "run_start"
    assert appends.batches[0][-1] == "run_end"


async def test_a_terminal_append_another_writer_refuses_tells_the_owner(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, stream = await _stream(store, 6, Appends(store))
    fenced: list[bool] = []
    stream.on_fenced = lambda: fenced.append(True)
    stream.emit("log", {"level": "info", "message": "never written"})
    # Another writer (a cancellation through another process) ends the run first.
    await store.append(run_stream(run_id), [], close=True)
    with (
        caplog.at_level(logging.WARNING, logger="flue_actors.run"),
        pytest.raises(StreamClosedError),
    ):
        await stream.end("run_end", _end(run_id))
    assert fenced == [True]
    assert stream.fenced
    assert f"run {run_id}: another writer ended it" in caplog.text
    assert await read_all(store, run_stream(run_id)) == []
