"""Ending interrupted runs: Flue's failRecoveredRun, fenced against a writer still alive."""

from __future__ import annotations

import pytest

from flue_actors import SqliteEventStore
from flue_actors._clock import StepClock, format_timestamp
from flue_actors._runtime.recovery import end_interrupted_run, end_orphaned_runs
from flue_actors._runtime.run_stream import RunStream
from flue_actors.errors import StreamClosedError, StreamConflictError
from flue_actors.store import run_stream


async def _admitted(store: SqliteEventStore, clock: StepClock, run_id: str, owner: str) -> None:
    header = {
        "type": "run_admitted",
        "runId": run_id,
        "workflowName": "w",
        "startedAt": format_timestamp(clock.now_ms()),
        "input": {"x": 1},
    }
    assert await store.admit_run(header, owner=owner)  # type: ignore[arg-type]


async def test_an_interrupted_run_gets_run_resume_then_an_errored_run_end() -> None:
    store, clock = SqliteEventStore(), StepClock()
    run_id = "run_00000000000000000000000001"
    await _admitted(store, clock, run_id, "host-a")
    writer = RunStream(store, run_id, clock)
    writer.emit("run_start", {"runId": run_id, "workflowName": "w", "startedAt": "t"})
    writer.emit("log", {"level": "info", "message": "working"})
    await writer.flush()

    assert await end_interrupted_run(store, run_id, clock) is True

    events = [event.data for event in (await store.read(run_stream(run_id))).events]
    assert [event["type"] for event in events] == ["run_start", "log", "run_resume", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2, 3]
    assert events[2]["workflowName"] == "w"
    assert events[3]["isError"] is True
    assert events[3]["result"] is None
    assert events[3]["error"]["type"] == "run_interrupted"
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "errored"
    assert (await store.stream_meta(run_stream(run_id))).closed  # type: ignore[union-attr]
    await store.close()


async def test_the_presumed_dead_writer_is_fenced_out() -> None:
    store, clock = SqliteEventStore(), StepClock()
    run_id = "run_00000000000000000000000002"
    await _admitted(store, clock, run_id, "host-a")
    zombie = RunStream(store, run_id, clock)
    zombie.emit("run_start", {"runId": run_id, "workflowName": "w", "startedAt": "t"})
    await zombie.flush()

    assert await end_interrupted_run(store, run_id, clock) is True

    zombie.emit("log", {"level": "info", "message": "still here"})
    await zombie.flush()
    assert isinstance(zombie.failure, (StreamConflictError, StreamClosedError))
    with pytest.raises((StreamConflictError, StreamClosedError)):
        await zombie.end("run_end", {"runId": run_id, "result": 1, "isError": False})
    types = [event.data["type"] for event in (await store.read(run_stream(run_id))).events]
    assert types == ["run_start", "run_resume", "run_end"]
    await store.close()


async def test_an_ended_run_is_only_reconciled() -> None:
    store, clock = SqliteEventStore(), StepClock()
    run_id = "run_00000000000000000000000003"
    await _admitted(store, clock, run_id, "host-a")
    path = run_stream(run_id)
    end = {
        "type": "run_end",
        "runId": run_id,
        "result": 7,
        "isError": False,
        "durationMs": 1,
        "v": 3,
        "eventIndex": 0,
        "timestamp": format_timestamp(clock.now_ms()),
    }
    await store.append(path, [end], expected_seq=0)  # a crash before the close

    assert await end_interrupted_run(store, run_id, clock) is False

    meta = await store.stream_meta(path)
    assert meta is not None
    assert meta.closed
    assert meta.length == 1
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "completed"
    await store.close()


async def test_orphans_of_silent_owners_are_ended_and_live_owners_keep_theirs() -> None:
    store, clock = SqliteEventStore(), StepClock()
    silent, alive = "run_00000000000000000000000004", "run_00000000000000000000000005"
    await _admitted(store, clock, silent, "host-gone")
    await _admitted(store, clock, alive, "host-alive")
    await store.heartbeat("host-alive", clock.now_ms() + 60_000)

    ended = await end_orphaned_runs(store, clock, stale_before_ms=clock.now_ms() + 1_000)

    assert ended == [silent]
    silent_record, alive_record = await store.get_run(silent), await store.get_run(alive)
    assert silent_record is not None
    assert silent_record.status == "errored"
    assert alive_record is not None
    assert alive_record.status == "active"
    await store.close()


async def test_an_orphan_resumed_elsewhere_since_the_sweep_looked_stays_with_its_new_owner() -> (
    None
):
    """Two processes sweep one store (``serve --workers``). One takes an orphan over between
    the other's look at the orphans and its look at the run's owner: the late sweep must not
    take the run from the live process that has just resumed it."""
    store, clock = SqliteEventStore(), StepClock()
    run_id = "run_00000000000000000000000006"
    await _admitted(store, clock, run_id, "host-gone")
    await store.heartbeat("host-gone", clock.now_ms())
    stale_before = clock.now_ms() + 1_000
    looked = store.orphaned_runs
    looks = 0

    async def orphans_then_taken_over(
        *, stale_before_ms: int, owner: str | None = None
    ) -> list[str]:
        nonlocal looks
        found = await looked(stale_before_ms=stale_before_ms, owner=owner)
        looks += 1
        if looks == 1:  # the other sweep resumes it now: a fresh heartbeat, then the claim
            await store.heartbeat("host-resuming", stale_before + 60_000)
            assert await store.claim_run(run_id, "host-resuming", previous="host-gone")
        return found

    store.orphaned_runs = orphans_then_taken_over  # type: ignore[method-assign]
    offered: list[tuple[str, str | None]] = []

    async def resume(run_id: str, previous: str | None) -> bool:
        offered.append((run_id, previous))
        await store.claim_run(run_id, "host-late", previous=previous)
        return True

    ended = await end_orphaned_runs(store, clock, stale_before_ms=stale_before, resume=resume)

    assert ended == []
    assert offered == []
    assert await store.owner_of(run_id) == "host-resuming"
    record = await store.get_run(run_id)
    assert record is not None
    assert record.status == "active"
    await store.close()


async def test_an_orphan_that_cannot_be_handed_over_now_is_left_for_the_next_sweep() -> None:
    store, clock = SqliteEventStore(), StepClock()
    later, declined, taken = (f"run_0000000000000000000000000{n}" for n in (6, 7, 8))
    for run_id in (later, declined, taken):
        await _admitted(store, clock, run_id, "host-gone")
    offered: list[str] = []

    async def resume(run_id: str, previous: str | None) -> bool | None:
        offered.append(run_id)
        return {later: None, declined: False, taken: True}[run_id]

    stale = clock.now_ms() + 1_000
    ended = await end_orphaned_runs(store, clock, stale_before_ms=stale, resume=resume)

    assert sorted(offered) == [later, declined, taken]
    assert ended == [declined]
    for run_id in (later, taken):
        record = await store.get_run(run_id)
        assert record is not None
        assert record.status == "active"
        assert await store.owner_of(run_id) == "host-gone"
    # The next sweep offers it again.
    assert later in await store.orphaned_runs(stale_before_ms=stale)
    await store.close()
