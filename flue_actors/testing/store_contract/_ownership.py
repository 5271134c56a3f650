"""Owners and leases: who executes a run, and which active runs nobody does (every store)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..._clock import parse_timestamp
from ..._jsonvalue import UNSET
from ...store import EventStore, run_stream
from ._base import ACROSS_STORES, StoreContractBase
from ._factories import (
    admission,
    iso,
    make_run_id,
    run_end,
    run_start,
)

T0 = parse_timestamp(iso(0))


async def _admit(store: EventStore, n: int, *, owner: str | None, at_ms: int) -> str:
    run_id = make_run_id(n)
    assert await store.admit_run(admission(run_id, started_at=iso(at_ms)), owner=owner)
    return run_id


OWNERS = ["host-a", "host-b", "host-c", "host-d"]
owner_beats = st.dictionaries(
    st.sampled_from(OWNERS), st.integers(min_value=0, max_value=20_000), max_size=4
)
# Each run: its owner (or none), when it was admitted, and whether it has ended.
runs = st.lists(
    st.tuples(
        st.sampled_from([None, *OWNERS]),
        st.integers(min_value=0, max_value=20_000),
        st.booleans(),
    ),
    max_size=8,
)


class OwnershipContract(StoreContractBase):
    async def test_admission_records_the_owner(self, store: EventStore) -> None:
        owned = await _admit(store, 1, owner="host-a", at_ms=0)
        unowned = await _admit(store, 2, owner=None, at_ms=0)

        assert await store.owner_of(owned) == "host-a"
        assert await store.owner_of(unowned) is None
        assert await store.owner_of(make_run_id(99)) is None

    async def test_a_second_admission_keeps_the_first_owner(self, store: EventStore) -> None:
        run_id = await _admit(store, 1, owner="host-a", at_ms=0)

        assert not await store.admit_run(admission(run_id), owner="host-b")
        assert await store.owner_of(run_id) == "host-a"

    async def test_a_run_is_claimed_only_from_the_owner_named(self, store: EventStore) -> None:
        run_id = await _admit(store, 1, owner="host-a", at_ms=0)

        # A compare-and-set: two sweepers that saw host-a silent cannot both take the run over.
        assert not await store.claim_run(run_id, "host-c", previous="host-b")
        assert await store.claim_run(run_id, "host-b", previous="host-a")
        assert not await store.claim_run(run_id, "host-c", previous="host-a")
        assert await store.owner_of(run_id) == "host-b"

    async def test_the_admission_header_is_read_back_for_a_takeover(
        self, store: EventStore
    ) -> None:
        header = admission(make_run_id(1), workflow_name="summarize", run_input={"q": 1})
        assert await store.admit_run(header, owner="host-a")

        assert await store.read_header(make_run_id(1)) == header
        assert await store.read_header(make_run_id(99)) is None

    async def test_runs_of_a_live_owner_are_not_orphans(self, store: EventStore) -> None:
        await _admit(store, 1, owner="host-a", at_ms=0)
        await store.heartbeat("host-a", T0 + 5_000)

        assert await store.orphaned_runs(stale_before_ms=T0 + 4_000) == []
        assert await store.orphaned_runs(stale_before_ms=T0 + 6_000) == [make_run_id(1)]

    async def test_heartbeats_never_go_back_in_time(self, store: EventStore) -> None:
        await _admit(store, 1, owner="host-a", at_ms=0)
        await store.heartbeat("host-a", T0 + 5_000)
        await store.heartbeat("host-a", T0 + 1_000)  # a late, reordered beat

        assert await store.orphaned_runs(stale_before_ms=T0 + 4_000) == []

    async def test_owners_that_never_beat_lose_runs_admitted_before_the_deadline(
        self,
        store: EventStore,
    ) -> None:
        old = await _admit(store, 1, owner="host-silent", at_ms=0)
        fresh = await _admit(store, 2, owner="host-silent", at_ms=10_000)
        unowned = await _admit(store, 3, owner=None, at_ms=0)

        orphans = await store.orphaned_runs(stale_before_ms=T0 + 5_000)

        assert sorted(orphans) == sorted([old, unowned])
        assert fresh not in orphans

    async def test_ended_runs_are_never_orphans(self, store: EventStore) -> None:
        run_id = await _admit(store, 1, owner="host-a", at_ms=0)
        await store.append(
            run_stream(run_id),
            [run_start(run_id, index=0), run_end(run_id, index=1, duration_ms=1)],
            expected_seq=0,
            close=True,
        )

        assert await store.orphaned_runs(stale_before_ms=T0 + 60_000) == []
        assert await store.orphaned_runs(stale_before_ms=T0 + 60_000, owner="host-a") == []

    async def test_an_owner_asks_for_the_runs_of_its_past_life(self, store: EventStore) -> None:
        past = await _admit(store, 1, owner="host-a", at_ms=0)
        current = await _admit(store, 2, owner="host-a", at_ms=10_000)
        await _admit(store, 3, owner="host-b", at_ms=0)
        await store.heartbeat("host-a", T0 + 20_000)

        # Born at +5 s: the run admitted before is its past life's, even though it heartbeats.
        assert await store.orphaned_runs(stale_before_ms=T0 + 5_000, owner="host-a") == [past]
        assert current not in await store.orphaned_runs(stale_before_ms=T0 + 5_000, owner="host-a")

    async def test_silent_owners_without_active_runs_are_pruned(self, store: EventStore) -> None:
        finished = await _admit(store, 1, owner="host-done", at_ms=0)
        await store.append(
            run_stream(finished),
            [run_start(finished, index=0), run_end(finished, index=1, duration_ms=1)],
            expected_seq=0,
            close=True,
        )
        await _admit(store, 2, owner="host-busy", at_ms=0)
        await store.heartbeat("host-done", T0 + 1_000)
        await store.heartbeat("host-busy", T0 + 1_000)
        await store.heartbeat("host-idle", T0 + 1_000)
        await store.heartbeat("host-alive", T0 + 9_000)

        pruned = await store.prune_owners(stale_before_ms=T0 + 5_000)

        # host-busy still has an active run: its silence is what makes that run an orphan.
        assert pruned == ["host-done", "host-idle"]
        assert await store.prune_owners(stale_before_ms=T0 + 5_000) == []  # they are gone
        assert await store.orphaned_runs(stale_before_ms=T0 + 5_000) == [make_run_id(2)]
        # A pruned owner that comes back is recorded anew.
        await store.heartbeat("host-idle", T0 + 20_000)
        assert await store.prune_owners(stale_before_ms=T0 + 30_000) == ["host-alive", "host-idle"]

    async def test_an_owner_leaving_prunes_only_itself(self, store: EventStore) -> None:
        await store.heartbeat("host-a", T0 + 1_000)
        await store.heartbeat("host-b", T0 + 1_000)
        await _admit(store, 1, owner="host-c", at_ms=0)
        await store.heartbeat("host-c", T0 + 1_000)

        assert await store.prune_owners(stale_before_ms=T0 + 60_000, owner="host-a") == ["host-a"]
        assert await store.prune_owners(stale_before_ms=T0 + 60_000, owner="host-c") == []
        assert await store.prune_owners(stale_before_ms=T0 + 60_000) == ["host-b"]

    @given(beats=owner_beats, admitted=runs, horizon=st.integers(min_value=0, max_value=21_000))
    @settings(max_examples=15, deadline=None, suppress_health_check=ACROSS_STORES)
    async def test_pruning_forgets_exactly_the_silent_idle_owners_and_no_orphan_changes(
        self,
        beats: dict[str, int],
        admitted: list[tuple[str | None, int, bool]],
        horizon: int,
    ) -> None:
        async with self.fresh_store() as store:
            busy = set()
            for n, (owner, at_ms, ended) in enumerate(admitted):
                run_id = await _admit(store, n, owner=owner, at_ms=at_ms)
                if ended:
                    events = [
                        run_start(run_id, index=0),
                        run_end(run_id, index=1, duration_ms=1),
                    ]
                    await store.append(run_stream(run_id), events, expected_seq=0, close=True)
                elif owner is not None:
                    busy.add(owner)
            for owner, at_ms in beats.items():
                await store.heartbeat(owner, T0 + at_ms)
            orphans = sorted(await store.orphaned_runs(stale_before_ms=T0 + horizon))

            pruned = await store.prune_owners(stale_before_ms=T0 + horizon)

            silent = {owner for owner, at_ms in beats.items() if at_ms < horizon}
            assert pruned == sorted(silent - busy)
            assert sorted(await store.orphaned_runs(stale_before_ms=T0 + horizon)) == orphans
            assert await store.prune_owners(stale_before_ms=T0 + horizon) == []

    # --- batch admission: what a Ray host writes for the runs it is handed ------------------------

    async def test_a_batch_is_admitted_with_its_owner_and_streams(self, store: EventStore) -> None:
        headers = [admission(make_run_id(n), run_input={"n": n}) for n in range(3)]

        assert await store.admit_runs(headers, owner="host-a") == [True, True, True]

        for header in headers:
            run_id = header["runId"]
            record = await store.get_run(run_id)
            assert record is not None
            assert record.status == "active"
            assert record.input == header["input"]
            assert await store.owner_of(run_id) == "host-a"
            meta = await store.stream_meta(run_stream(run_id))
            assert meta is not None
            assert (meta.length, meta.closed) == (0, False)

    async def test_a_batch_admits_each_run_once_and_keeps_existing_ones(
        self, store: EventStore
    ) -> None:
        await _admit(store, 1, owner="host-a", at_ms=0)
        again = admission(make_run_id(1), run_input="replaced?")
        fresh = admission(make_run_id(2))

        assert await store.admit_runs([again, fresh, fresh], owner="host-b") == [False, True, False]

        assert await store.owner_of(make_run_id(1)) == "host-a"
        first = await store.get_run(make_run_id(1))
        assert first is not None
        assert first.input is UNSET
        assert await store.owner_of(make_run_id(2)) == "host-b"
        assert await store.admit_runs([], owner="host-b") == []

    async def test_a_batch_that_fails_admits_none_of_its_runs(self, store: EventStore) -> None:
        good = admission(make_run_id(1))
        bad = admission(make_run_id(2), run_input={"not json": object()})  # type: ignore[dict-item]

        with pytest.raises(TypeError, match="JSON"):
            await store.admit_runs([good, bad], owner="host-a")

        assert await store.get_run(make_run_id(1)) is None
        assert await store.get_run(make_run_id(2)) is None
        assert await store.stream_meta(run_stream(make_run_id(1))) is None

    @given(ids=st.lists(st.integers(min_value=0, max_value=5), max_size=8), seed=st.integers(0, 5))
    @settings(max_examples=15, deadline=None, suppress_health_check=ACROSS_STORES)
    async def test_a_batch_admits_exactly_what_one_admission_each_would(
        self, ids: list[int], seed: int
    ) -> None:
        """``admit_runs`` is ``admit_run`` for each header in order, in one transaction."""
        with tempfile.TemporaryDirectory(prefix="flue-batch-") as folder:
            async with (
                self.fresh_store(Path(folder) / "batch") as batch_store,
                self.fresh_store(Path(folder) / "single") as single_store,
            ):
                existing = [admission(make_run_id(n)) for n in range(seed)]
                for header in existing:
                    assert await batch_store.admit_run(header, owner="host-a")
                    assert await single_store.admit_run(header, owner="host-a")
                headers = [admission(make_run_id(n), run_input=i) for i, n in enumerate(ids)]

                batched = await batch_store.admit_runs(headers, owner="host-b")
                one_by_one = [await single_store.admit_run(h, owner="host-b") for h in headers]

                assert batched == one_by_one
                for n in set(ids):
                    run_id = make_run_id(n)
                    assert await batch_store.owner_of(run_id) == await single_store.owner_of(run_id)
                    batch_record = await batch_store.get_run(run_id)
                    single_record = await single_store.get_run(run_id)
                    assert batch_record is not None
                    assert single_record is not None
                    assert batch_record.input == single_record.input
