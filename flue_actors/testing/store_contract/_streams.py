"""The event-stream contract (reference 1.14): offsets, reads, appends, closing, waiting."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...errors import StreamClosedError, StreamConflictError, StreamMissingError
from ...store import (
    EventStore,
    StreamMeta,
    StreamPage,
    format_offset,
)
from ._base import StoreContractBase, StoreOpener
from ._factories import append_events, gather_settled, log_event, read_all

PATH = "agents/echo/a1"
OTHER = "agents/echo/a2"
FIRST_OFFSET = "0000000000000000_0000000000000000"
EMPTY_MISSING = StreamPage(events=[], next_offset="-1", up_to_date=True, closed=False)


async def _snapshot(store: EventStore, path: str = PATH) -> tuple[StreamMeta | None, list[Any]]:
    """What a reader can observe of a stream: its meta and every (offset, data) pair."""
    events = await read_all(store, path)
    return await store.stream_meta(path), [(e.offset, e.data) for e in events]


# --- Serialization happens in the caller ----------------------------------------------------------


def _unserializable() -> list[Any]:
    return [{1, 2}, float("nan"), math.inf, -math.inf, object(), b"bytes"]


# --- Waiting for appends --------------------------------------------------------------------------


async def _wait_then(
    store: EventStore,
    length: int,
    action: Callable[[], Awaitable[None]],
    *,
    wait_seconds: float = 2.0,
) -> tuple[bool, float]:
    """Start a waiter, let it block, run ``action``; returns (result, seconds after the action)."""
    waiter = asyncio.create_task(store.wait_for_append(PATH, length=length, timeout=wait_seconds))
    await asyncio.sleep(0.05)
    assert not waiter.done(), "the waiter must still be waiting before the action"
    started = time.monotonic()
    await action()
    result = await waiter
    return result, time.monotonic() - started


class StreamContract(StoreContractBase):
    # --- Appends and reads ------------------------------------------------------------------------

    async def test_append_returns_offsets_from_first_event(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        first = await store.append(PATH, [log_event(index=0), log_event(index=1)])
        second = await store.append(PATH, [log_event(index=2)])
        assert first == [FIRST_OFFSET, "0000000000000000_0000000000000001"]
        assert second == ["0000000000000000_0000000000000002"]
        assert await store.append(PATH, []) == []

    async def test_read_from_start_returns_every_event_in_order(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 5)
        page = await store.read(PATH)
        assert [e.data for e in page.events] == events
        assert [e.offset for e in page.events] == [format_offset(i) for i in range(5)]
        assert [e.seq for e in page.events] == list(range(5))
        assert page.next_offset == format_offset(4)
        assert page.up_to_date is True
        assert page.closed is False

    async def test_read_is_strictly_after_offset(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 5)
        page = await store.read(PATH, offset=format_offset(1))
        assert [e.data for e in page.events] == events[2:]
        assert page.next_offset == format_offset(4)
        assert page.up_to_date is True
        # The last event's own offset yields nothing more.
        tail = await store.read(PATH, offset=format_offset(4))
        assert tail == StreamPage([], format_offset(4), up_to_date=True, closed=False)

    async def test_read_accepts_offsets_with_any_first_component(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 4)
        page = await store.read(PATH, offset="0000000000000009_0000000000000001")
        assert [e.data for e in page.events] == events[2:]

    async def test_read_past_tail_returns_effective_start(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 3)
        page = await store.read(PATH, offset=format_offset(10))
        assert page == StreamPage([], format_offset(10), up_to_date=True, closed=False)

    async def test_read_empty_stream(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        assert await store.read(PATH) == StreamPage([], "-1", up_to_date=True, closed=False)
        assert await store.read(PATH, offset="now") == StreamPage([], "-1", True, False)

    async def test_read_now_returns_tail_without_events(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 3)
        assert await store.read(PATH, offset="now") == StreamPage([], format_offset(2), True, False)
        await store.close_stream(PATH)
        assert await store.read(PATH, offset="now") == StreamPage([], format_offset(2), True, True)

    @pytest.mark.parametrize("bad", ["", "abc", "12", "1_", "-2", "NOW"])
    async def test_read_rejects_malformed_offset(self, store: EventStore, bad: str) -> None:
        await store.create_stream(PATH)
        with pytest.raises(ValueError, match="Invalid offset"):
            await store.read(PATH, offset=bad)

    @pytest.mark.parametrize(
        ("limit", "expected"),
        [
            (None, 100),
            (0, 100),
            (-1, 100),
            (-500, 100),
            (1, 1),
            (250, 250),
            (1000, 1000),
            (1001, 1000),
        ],
    )
    async def test_read_limit(self, store: EventStore, limit: int | None, expected: int) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 1200)
        page = await store.read(PATH, limit=limit)
        assert len(page.events) == expected
        assert [e.seq for e in page.events] == list(range(expected))
        assert page.next_offset == format_offset(expected - 1)
        assert page.up_to_date is False

    async def test_paging_follows_next_offset_until_up_to_date(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 250)
        pages: list[StreamPage] = []
        offset = "-1"
        for _ in range(5):
            page = await store.read(PATH, offset=offset)
            pages.append(page)
            if page.up_to_date:
                break
            offset = page.next_offset
        assert [len(p.events) for p in pages] == [100, 100, 50]
        assert [p.up_to_date for p in pages] == [False, False, True]
        assert [p.next_offset for p in pages] == [
            format_offset(99),
            format_offset(199),
            format_offset(249),
        ]
        assert [e.data for p in pages for e in p.events] == events

    async def test_page_ending_exactly_at_tail_is_up_to_date(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 100)
        page = await store.read(PATH)
        assert len(page.events) == 100
        assert page.up_to_date is True
        small = await store.read(PATH, offset=format_offset(94), limit=5)
        assert [e.seq for e in small.events] == [95, 96, 97, 98, 99]
        assert small.up_to_date is True

    @pytest.mark.parametrize(
        "offset", ["-1", "now", FIRST_OFFSET, "0000000000000000_0000000000000005"]
    )
    async def test_missing_stream_reads_as_empty_and_open(
        self, store: EventStore, offset: str
    ) -> None:
        assert await store.read("agents/none/missing", offset=offset) == EMPTY_MISSING
        # Reading does not create it.
        assert await store.stream_meta("agents/none/missing") is None

    async def test_stream_meta(self, store: EventStore) -> None:
        assert await store.stream_meta(PATH) is None
        await store.create_stream(PATH)
        assert await store.stream_meta(PATH) == StreamMeta(next_offset="-1", length=0, closed=False)
        await append_events(store, PATH, 3)
        assert await store.stream_meta(PATH) == StreamMeta(format_offset(2), 3, closed=False)
        await store.close_stream(PATH)
        assert await store.stream_meta(PATH) == StreamMeta(format_offset(2), 3, closed=True)

    async def test_create_stream_is_idempotent_and_keeps_events(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 3)
        await store.create_stream(PATH)
        assert await store.stream_meta(PATH) == StreamMeta(format_offset(2), 3, closed=False)
        assert [e.data for e in await read_all(store, PATH)] == events
        # The sequence carries on where it was.
        assert await store.append(PATH, [log_event(index=3)]) == [format_offset(3)]

    async def test_create_stream_keeps_a_closed_stream_closed(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 1)
        await store.close_stream(PATH)
        await store.create_stream(PATH)
        assert await store.stream_meta(PATH) == StreamMeta(FIRST_OFFSET, 1, closed=True)

    async def test_append_to_missing_stream_raises(self, store: EventStore) -> None:
        with pytest.raises(StreamMissingError, match="does not exist"):
            await store.append(PATH, [log_event(index=0)])
        assert await store.stream_meta(PATH) is None
        assert await store.read(PATH) == EMPTY_MISSING

    async def test_append_to_closed_stream_raises_and_changes_nothing(
        self, store: EventStore
    ) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 2)
        await store.close_stream(PATH)
        before = await _snapshot(store)
        with pytest.raises(StreamClosedError, match="is closed"):
            await store.append(PATH, [log_event(index=2)])
        with pytest.raises(StreamClosedError):
            await store.append(PATH, [log_event(index=2)], close=True)
        assert await _snapshot(store) == before

    async def test_close_stream_is_idempotent_and_keeps_events(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        events = await append_events(store, PATH, 2)
        await store.close_stream(PATH)
        await store.close_stream(PATH)
        page = await store.read(PATH)
        assert [e.data for e in page.events] == events
        assert page.closed is True
        assert page.up_to_date is True
        assert await store.stream_meta(PATH) == StreamMeta(format_offset(1), 2, closed=True)

    async def test_append_with_close_appends_and_closes(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 1)
        offsets = await store.append(PATH, [log_event(index=1), log_event(index=2)], close=True)
        assert offsets == [format_offset(1), format_offset(2)]
        assert await store.stream_meta(PATH) == StreamMeta(format_offset(2), 3, closed=True)
        page = await store.read(PATH)
        assert [e.seq for e in page.events] == [0, 1, 2]
        assert page.closed is True
        with pytest.raises(StreamClosedError):
            await store.append(PATH, [log_event(index=3)])

    async def test_append_nothing_with_close_closes(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        assert await store.append(PATH, [], close=True) == []
        assert await store.stream_meta(PATH) == StreamMeta("-1", 0, closed=True)

    async def test_append_with_matching_expected_seq(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        assert await store.append(PATH, [log_event(index=0)], expected_seq=0) == [FIRST_OFFSET]
        offsets = await store.append(PATH, [log_event(index=1), log_event(index=2)], expected_seq=1)
        assert offsets == [format_offset(1), format_offset(2)]

    @pytest.mark.parametrize("expected_seq", [0, 1, 3, 100])
    @pytest.mark.parametrize("close", [False, True])
    async def test_expected_seq_mismatch_writes_nothing(
        self, store: EventStore, expected_seq: int, close: bool
    ) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 2)
        before = await _snapshot(store)
        with pytest.raises(StreamConflictError) as caught:
            await store.append(
                PATH,
                [log_event(index=7), log_event(index=8)],
                expected_seq=expected_seq,
                close=close,
            )
        assert caught.value.expected == expected_seq
        assert caught.value.actual == 2
        assert await _snapshot(store) == before
        # The stream is still open and its counter did not move.
        assert await store.append(PATH, [log_event(index=2)], expected_seq=2) == [format_offset(2)]

    @pytest.mark.parametrize(
        "value", _unserializable(), ids=["set", "nan", "inf", "-inf", "obj", "bytes"]
    )
    async def test_unserializable_event_raises_and_stream_is_unchanged(
        self, store: EventStore, value: Any
    ) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 2)
        before = await _snapshot(store)
        bad = log_event(index=3) | {"attributes": {"value": value}}
        with pytest.raises((TypeError, ValueError)):
            await store.append(PATH, [log_event(index=2), bad])
        with pytest.raises((TypeError, ValueError)):
            await store.append(PATH, [bad], close=True)
        assert await _snapshot(store) == before
        # The counter did not move and the stream is still open.
        assert await store.append(PATH, [log_event(index=2)], expected_seq=2) == [format_offset(2)]

    async def test_wait_for_append_wakes_on_concurrent_append(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 1)

        async def append() -> None:
            await asyncio.create_task(store.append(PATH, [log_event(index=1)]))

        woke, elapsed = await _wait_then(store, 1, append)
        assert woke is True
        assert elapsed < 0.5

    async def test_wait_for_append_wakes_on_close(self, store: EventStore) -> None:
        await store.create_stream(PATH)

        async def close() -> None:
            await asyncio.create_task(store.close_stream(PATH))

        woke, elapsed = await _wait_then(store, 0, close)
        assert woke is True
        assert elapsed < 0.5

    async def test_wait_for_append_times_out(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 2)
        started = time.monotonic()
        assert await store.wait_for_append(PATH, length=2, timeout=0.2) is False
        elapsed = time.monotonic() - started
        assert 0.15 <= elapsed < 1.0

    async def test_wait_for_append_ignores_other_streams(self, store: EventStore) -> None:
        await store.create_stream(PATH)
        await store.create_stream(OTHER)

        async def append_elsewhere() -> None:
            await store.append(OTHER, [log_event(index=0)])
            await store.close_stream(OTHER)

        woke, _ = await _wait_then(store, 0, append_elsewhere, wait_seconds=0.25)
        assert woke is False

    async def test_wait_for_append_on_a_stream_created_later(self, store: EventStore) -> None:
        waiter = asyncio.create_task(store.wait_for_append(PATH, length=0, timeout=2.0))
        await asyncio.sleep(0.05)
        await store.create_stream(PATH)
        await asyncio.sleep(0.1)
        assert not waiter.done(), "an empty stream holds no more than 0 events"
        started = time.monotonic()
        await store.append(PATH, [log_event(index=0)])
        assert await waiter is True
        assert time.monotonic() - started < 0.5

    async def test_wait_for_append_returns_at_once_when_already_satisfied(
        self, store: EventStore
    ) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 3)
        started = time.monotonic()
        assert await store.wait_for_append(PATH, length=1, timeout=2.0) is True
        await store.close_stream(PATH)
        assert await store.wait_for_append(PATH, length=3, timeout=2.0) is True
        assert time.monotonic() - started < 0.5

    # --- Concurrency ------------------------------------------------------------------------------

    @pytest.mark.parametrize("writers", [2, 5])
    async def test_concurrent_writers_with_same_expected_seq_exactly_one_wins(
        self, store: EventStore, writers: int
    ) -> None:
        await store.create_stream(PATH)
        await append_events(store, PATH, 1)
        candidates = [[log_event(index=100 + w), log_event(index=200 + w)] for w in range(writers)]
        outcomes = await gather_settled(
            [store.append(PATH, batch, expected_seq=1) for batch in candidates]
        )
        winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, list)]
        losers = [o for o in outcomes if isinstance(o, StreamConflictError)]
        assert len(winners) == 1
        assert len(losers) == writers - 1
        assert outcomes[winners[0]] == [format_offset(1), format_offset(2)]
        assert all(loser.expected == 1 and loser.actual == 3 for loser in losers)
        stored = await read_all(store, PATH)
        assert [e.data for e in stored[1:]] == candidates[winners[0]]
        assert len(stored) == 3

    async def test_concurrent_appends_to_many_streams_all_land(self, store: EventStore) -> None:
        streams = [f"agents/load/{i}" for i in range(40)]
        for path in streams:
            await store.create_stream(path)
        calls = []
        expected: dict[str, list[list[dict[str, Any]]]] = {path: [] for path in streams}
        for round_ in range(5):
            for s, path in enumerate(streams):
                batch = [
                    log_event(f"run_{s}", index=2 * round_),
                    log_event(f"run_{s}", index=2 * round_ + 1),
                ]
                expected[path].append(batch)
                calls.append(store.append(path, batch))
        # Refused requests in the same commit must not take anyone else's events with them.
        failing = [
            store.append("agents/load/missing", [log_event(index=0)]),
            store.append(streams[0], [log_event(index=99)], expected_seq=10_000),
        ]
        outcomes = await gather_settled(calls + failing)
        assert isinstance(outcomes[-2], StreamMissingError)
        assert isinstance(outcomes[-1], StreamConflictError)
        results = outcomes[: len(calls)]
        assert all(isinstance(r, list) for r in results), [
            r for r in results if not isinstance(r, list)
        ]

        by_stream: dict[str, list[list[str]]] = {path: [] for path in streams}
        for i, offsets in enumerate(results):
            by_stream[streams[i % len(streams)]].append(offsets)
        for path in streams:
            stored = await read_all(store, path)
            assert [e.seq for e in stored] == list(range(10)), path
            assert await store.stream_meta(path) == StreamMeta(format_offset(9), 10, closed=False)
            seq_of = {e.offset: e.seq for e in stored}
            data_at = {e.offset: e.data for e in stored}
            returned = [offset for offsets in by_stream[path] for offset in offsets]
            assert sorted(returned) == [format_offset(i) for i in range(10)]
            for offsets, batch in zip(by_stream[path], expected[path], strict=True):
                # Each append's events are contiguous and stored exactly as given.
                assert seq_of[offsets[1]] == seq_of[offsets[0]] + 1
                assert [data_at[o] for o in offsets] == batch
        assert await store.stream_meta("agents/load/missing") is None

    async def test_writers_in_separate_stores_race_and_exactly_one_wins(
        self,
        store_opener: StoreOpener,
    ) -> None:
        """Two store objects (for PostgreSQL: two pools) on the same data, racing on one stream."""
        first, second = store_opener(), store_opener()
        await first.create_stream(PATH)
        await append_events(first, PATH, 1)
        for round_ in range(10):
            expected = 1 + round_ * 2
            batches = [
                [log_event(index=100 * w + round_), log_event(index=100 * w + 50)] for w in (1, 2)
            ]
            outcomes = await gather_settled(
                [
                    first.append(PATH, batches[0], expected_seq=expected),
                    second.append(PATH, batches[1], expected_seq=expected),
                ]
            )
            winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, list)]
            assert len(winners) == 1, outcomes
            loser = outcomes[1 - winners[0]]
            assert isinstance(loser, StreamConflictError)
            assert (loser.expected, loser.actual) == (expected, expected + 2)
            stored = await read_all(second, PATH, offset=format_offset(expected - 1))
            assert [e.data for e in stored] == batches[winners[0]]
        assert await first.stream_meta(PATH) == StreamMeta(format_offset(20), 21, closed=False)

    @pytest.mark.parametrize(
        "path", ["agents/nul\x00inside", "agents/\x01\x00\x01", "agents/é/名前/🚀", "a" * 3000]
    )
    async def test_any_path_can_be_written_read_and_waited_on(
        self, store: EventStore, path: str
    ) -> None:
        await store.create_stream(path)
        events = await append_events(store, path, 3)
        assert [e.data for e in await read_all(store, path)] == events
        assert await store.stream_meta(path) == StreamMeta(format_offset(2), 3, closed=False)
        assert await store.stream_meta(path + "x") is None
        waiter = asyncio.create_task(store.wait_for_append(path, length=3, timeout=2.0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        assert await store.append(path, [log_event(index=3)]) == [format_offset(3)]
        assert await waiter is True
