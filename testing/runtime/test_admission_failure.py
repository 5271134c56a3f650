"""A run that was admitted but could not be handed to its backend still ends (Flue: the stream
then holds only run_end, closed, and the record is errored)."""

from __future__ import annotations

import pytest

from flue_actors import ActionContext, Runtime, SqliteEventStore, define_agent, define_workflow
from flue_actors._clock import StepClock, parse_timestamp
from flue_actors._events import RunAdmittedEvent
from flue_actors._ids import SequentialIds
from flue_actors.errors import WorkflowAdmissionFailedError
from flue_actors.models import ModelRegistry
from flue_actors.store import run_stream


@define_workflow(agent=define_agent(model="fake/echo"))
async def noop(ctx: ActionContext[None]) -> None:
    return None


class RefusingBackend:
    def owner_for(self, run_id: str, workflow: str) -> str:
        return "nowhere"

    def __init__(self, store: SqliteEventStore) -> None:
        self.store = store

    async def admit(self, header: RunAdmittedEvent, *, owner: str) -> None:
        # Admitted, then the hand-over fails.
        assert await self.store.admit_run(header, owner=owner)
        raise RuntimeError("no host would take it")

    async def join(self, run_id: str) -> bool:
        return False

    async def cancel(self, run_id: str, reason: str) -> bool:
        return False

    async def close(self, *, grace_seconds: float | None = None) -> None:
        return None


async def test_a_run_its_backend_refused_is_ended_with_only_run_end() -> None:
    store = SqliteEventStore()
    runtime = Runtime(
        {"noop": noop},
        store=store,
        backend=RefusingBackend(store),
        models=ModelRegistry(),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    async with runtime:
        with pytest.raises(WorkflowAdmissionFailedError, match="no host would take it"):
            await runtime.invoke("noop")

        [pointer] = (await runtime.list_runs()).runs
        record = await runtime.get_run(pointer.run_id)
        events = await runtime.events(pointer.run_id)
        meta = await store.stream_meta(run_stream(pointer.run_id))

    assert record is not None
    assert record.status == "errored"
    assert record.error is not None
    assert record.error["message"] == "no host would take it"
    assert [event["type"] for event in events] == ["run_end"]
    end = events[0]
    assert (end["v"], end["eventIndex"], end["isError"], end["result"]) == (3, 0, True, None)
    assert end["timestamp"] == record.ended_at
    assert (
        parse_timestamp(end["timestamp"]) - parse_timestamp(record.started_at)
        == (end["durationMs"])
    )
    assert meta is not None
    assert meta.closed


class UnreachableBackend(RefusingBackend):
    async def admit(self, header: RunAdmittedEvent, *, owner: str) -> None:
        # The owner could not be reached: nothing was admitted anywhere.
        raise ConnectionError("host unreachable")


async def test_an_admission_that_never_happened_leaves_no_run() -> None:
    store = SqliteEventStore()
    runtime = Runtime(
        {"noop": noop},
        store=store,
        backend=UnreachableBackend(store),
        models=ModelRegistry(),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    async with runtime:
        with pytest.raises(WorkflowAdmissionFailedError, match="host unreachable"):
            await runtime.invoke("noop")

        assert (await runtime.list_runs()).runs == []
