"""A sweep never takes the runs of owners living in its own process, however late their
heartbeat: under load a ``serve`` process's heartbeat task can be starved past the lease while
its runs go on. Starvation is made deterministic: the owner's last heartbeat is written long
ago, and its heartbeat task never beats again (a blocked store call) or fails."""

from __future__ import annotations

import asyncio

from flue_actors import SqliteEventStore
from flue_actors._clock import StepClock, format_timestamp
from flue_actors._runtime.lease import OwnerLease, living_leases
from flue_actors._runtime.supervisor import LeaseSupervisor

LONG_AGO_MS = 1_000  # far past any lease: a starved heartbeat


class StarvedHeartbeats(SqliteEventStore):
    """A store whose heartbeats for ``starved`` owners hang (a starved heartbeat task) until
    ``release``, or fail if ``failing``; other owners' heartbeats go through."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.starved: set[str] = set()
        self.failing = False
        self.release = asyncio.Event()

    async def heartbeat(self, owner: str, now_ms: int) -> None:
        if owner in self.starved:
            if self.failing:
                raise ConnectionError("the store did not answer in time")
            await self.release.wait()
        await super().heartbeat(owner, now_ms)


async def _admit(store: SqliteEventStore, run_id: str, owner: str) -> None:
    header = {
        "type": "run_admitted",
        "runId": run_id,
        "workflowName": "w",
        "startedAt": format_timestamp(LONG_AGO_MS),
        "input": {},
    }
    assert await store.admit_run(header, owner=owner)  # type: ignore[arg-type]
    await SqliteEventStore.heartbeat(store, owner, LONG_AGO_MS)


async def _status(store: SqliteEventStore, run_id: str) -> str:
    record = await store.get_run(run_id)
    assert record is not None
    return record.status


async def test_a_sweep_renews_its_own_owners_then_spares_their_runs() -> None:
    store = StarvedHeartbeats()
    here = OwnerLease(store, "local:here", interval=3600)
    store.starved.add(here.owner)  # its heartbeat task hangs in its first beat
    await _admit(store, "run_00000000000000000000000001", here.owner)
    await _admit(store, "run_00000000000000000000000002", "local:gone")  # another process's
    here.keep_alive()
    await asyncio.sleep(0)  # the heartbeat task starts, and blocks
    assert here in living_leases()
    supervisor = LeaseSupervisor(store, StepClock(), lease_seconds=3, sweep_seconds=1)
    # The sweep's own renewal goes through the store unblocked from here on.
    store.starved.discard(here.owner)

    ended = await supervisor.sweep()

    assert ended == ["run_00000000000000000000000002"]  # the dead owner's run is ended
    assert await _status(store, "run_00000000000000000000000001") == "active"
    orphans = await store.orphaned_runs(stale_before_ms=LONG_AGO_MS + 1)
    assert orphans == []  # renewed: other processes see the owner alive too
    store.release.set()
    await here.stop()
    assert here not in living_leases()
    await store.close()


async def test_an_owner_of_this_process_is_spared_even_when_its_heartbeat_fails() -> None:
    store = StarvedHeartbeats()
    store.failing = True
    here = OwnerLease(store, "local:here-failing", interval=3600)
    store.starved.add(here.owner)
    await _admit(store, "run_00000000000000000000000003", here.owner)
    here.keep_alive()
    await asyncio.sleep(0)
    supervisor = LeaseSupervisor(store, StepClock(), lease_seconds=3, sweep_seconds=1)

    assert await supervisor.sweep() == []
    assert await _status(store, "run_00000000000000000000000003") == "active"
    # Still an orphan to any other process (its heartbeat is stale), which may take it.
    assert await store.orphaned_runs(stale_before_ms=LONG_AGO_MS + 1) == [
        "run_00000000000000000000000003"
    ]

    await here.stop()  # gone from this process: the next sweep here ends its run
    assert await supervisor.sweep() == ["run_00000000000000000000000003"]
    assert await _status(store, "run_00000000000000000000000003") == "errored"
    await store.close()
