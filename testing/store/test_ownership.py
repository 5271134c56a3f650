"""Owners and leases beyond the store contract: a leaving owner and the orphan sweep, on every
backend (the contract's owner tests are in flue_actors.testing.store_contract)."""

from __future__ import annotations

from datetime import UTC, datetime

from flue_actors._clock import SystemClock, parse_timestamp
from flue_actors._runtime.lease import OwnerLease
from flue_actors._runtime.recovery import end_orphaned_runs
from flue_actors.store import EventStore

from .conftest import (
    admission,
    iso,
    make_run_id,
)

T0 = parse_timestamp(iso(0))


async def _admit(store: EventStore, n: int, *, owner: str | None, at_ms: int) -> str:
    run_id = make_run_id(n)
    assert await store.admit_run(admission(run_id, started_at=iso(at_ms)), owner=owner)
    return run_id


async def test_owners_leave_on_exit_and_the_sweep_forgets_the_crashed(store: EventStore) -> None:
    lease = OwnerLease(store, "host-leaving")
    await lease.beat()
    lease.keep_alive()
    await store.heartbeat("host-crashed", T0)
    await store.heartbeat("host-crashed-busy", T0)
    busy = await _admit(store, 1, owner="host-crashed-busy", at_ms=0)

    await lease.stop()
    ended = await end_orphaned_runs(store, SystemClock(), stale_before_ms=T0 + 1_000)

    assert ended == [busy]  # its run ended first, then the owner could be forgotten
    everyone = SystemClock().now_ms() + 60_000
    assert await store.prune_owners(stale_before_ms=everyone) == []


def test_the_epoch_used_here_is_utc() -> None:
    assert datetime.fromtimestamp(T0 / 1000, tz=UTC).isoformat().startswith("2025-01-01")
