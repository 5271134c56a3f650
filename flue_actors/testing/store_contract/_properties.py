"""Property tests: the projection is the fold of the log, reads page exactly, offsets sort."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from ..._events import RunAdmittedEvent, RunError
from ..._jsonvalue import UNSET, JsonValue, Unset
from ..._records import fold
from ...store import (
    EventStore,
    StreamMeta,
    format_offset,
    run_stream,
)
from ._base import ACROSS_STORES, StoreContractBase
from ._factories import (
    admission,
    iso,
    log_event,
    run_end,
    run_resume,
    run_start,
)

# Each example opens its own store, so no function-scoped fixture is shared between examples.
PROPERTY = settings(deadline=None, suppress_health_check=ACROSS_STORES)


# --- Strategies -----------------------------------------------------------------------------------

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
maybe_input: st.SearchStrategy[JsonValue | Unset] = st.just(UNSET) | json_values
timestamps = st.integers(min_value=0, max_value=10**9).map(iso)
names = st.text(max_size=10)


@st.composite
def run_errors(draw: st.DrawFn) -> RunError:
    error: RunError = {"name": draw(names), "message": draw(st.text(max_size=20))}
    if draw(st.booleans()):
        error["type"] = draw(names)
    if draw(st.booleans()):
        error["meta"] = draw(st.dictionaries(names, json_values, max_size=2))
    return error


EventKind = Literal["run_start", "run_resume", "log", "run_end_ok", "run_end_error"]


@st.composite
def run_event(draw: st.DrawFn, run_id: str, index: int) -> dict[str, Any]:
    kind: EventKind = draw(
        st.sampled_from(["run_start", "run_resume", "log", "run_end_ok", "run_end_error"])
    )
    timestamp = draw(timestamps)
    if kind == "run_start":
        return run_start(
            run_id,
            index=index,
            workflow_name=draw(names),
            started_at=draw(timestamps),
            run_input=draw(maybe_input),
            timestamp=timestamp,
        )
    if kind == "run_resume":
        return run_resume(
            run_id,
            index=index,
            workflow_name=draw(names),
            started_at=draw(timestamps),
            timestamp=timestamp,
        )
    duration = draw(st.integers(min_value=0, max_value=10**9))
    if kind == "run_end_ok":
        return run_end(
            run_id, index=index, duration_ms=duration, timestamp=timestamp, result=draw(json_values)
        )
    if kind == "run_end_error":
        return run_end(
            run_id, index=index, duration_ms=duration, timestamp=timestamp, error=draw(run_errors())
        )
    return log_event(run_id, index=index, message=draw(st.text(max_size=10)))


@dataclass(frozen=True)
class Batch:
    events: list[dict[str, Any]]
    close: bool
    close_apart: bool  # closed by close_stream after the append instead of by the append


@dataclass(frozen=True)
class History:
    run_id: str
    header: RunAdmittedEvent | None
    batches: list[Batch]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch.events]


@st.composite
def histories(draw: st.DrawFn) -> History:
    run_id = draw(st.sampled_from(["run_01JABCDEFGHJKMNPQRSTVWXYZ0", "run_é-名前", "r"]))
    header = None
    if draw(st.integers(0, 4)) > 0:  # mostly admitted runs; sometimes a bare (recovered) stream
        carrier = draw(st.none() | st.dictionaries(names, names, min_size=1, max_size=2))
        header = admission(
            run_id,
            workflow_name=draw(names),
            started_at=draw(timestamps),
            run_input=draw(maybe_input),
            trace_carrier=carrier,
        )
    count = draw(st.integers(min_value=0, max_value=10))
    events = [draw(run_event(run_id, i)) for i in range(count)]
    cuts = draw(st.lists(st.booleans(), min_size=max(count - 1, 0), max_size=max(count - 1, 0)))
    groups: list[list[dict[str, Any]]] = [[]] if count else []
    for i, event in enumerate(events):
        groups[-1].append(event)
        if i < count - 1 and cuts[i]:
            groups.append([])
    close_at_end = draw(st.booleans())
    batches = []
    for n, group in enumerate(groups):
        last = n == len(groups) - 1
        batches.append(Batch(group, close=last and close_at_end, close_apart=draw(st.booleans())))
    return History(run_id, header, batches)


# --- (1) The record is the fold of the log --------------------------------------------------------


async def _replay(store: EventStore, history: History) -> None:
    path = run_stream(history.run_id)
    if history.header is not None:
        assert await store.admit_run(history.header) is True
    else:
        await store.create_stream(path)
    for batch in history.batches:
        if batch.close_apart:
            await store.append(path, batch.events)
            if batch.close:
                await store.close_stream(path)
        else:
            await store.append(path, batch.events, close=batch.close)


# --- (2) Paging a stream from any offset ----------------------------------------------------------

limits = st.integers(min_value=1, max_value=12) | st.integers(min_value=1, max_value=1000)
_PAGING: dict[str, st.SearchStrategy[Any]] = {
    "length": st.integers(min_value=0, max_value=60),
    "batch_size": st.integers(min_value=1, max_value=60),
    "start": st.integers(min_value=-1, max_value=70) | st.just("now"),
    "limit": limits,
    "closed": st.booleans(),
}
_PROPERTY_STRATEGIES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "test_record_is_the_fold_of_header_and_events": {"history": histories()},
    "test_paging_from_any_offset_yields_exactly_the_events_after_it": _PAGING,
}


class PropertyContract(StoreContractBase):
    """The property tests, written here as plain methods: each subclass gets them as hypothesis
    tests of its own, run :attr:`property_examples` times each (hypothesis fixes a test's
    settings when it is decorated, so a store class could not change inherited ones)."""

    #: Examples per property test, each on a fresh store. The default suits a store that opens
    #: in milliseconds; one whose fresh store costs a round trip of DDL (a database schema each,
    #: about 0.25 s on PostgreSQL) may ask for fewer.
    property_examples: ClassVar[int] = 150

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        examples = settings(PROPERTY, max_examples=cls.property_examples)
        for name, strategies in _PROPERTY_STRATEGIES.items():
            body = PropertyContract.__dict__[name]
            setattr(cls, name, examples(given(**strategies)(body)))

    async def test_record_is_the_fold_of_header_and_events(self, history: History) -> None:
        async with self.fresh_store() as store:
            await _replay(store, history)
            expected = fold(history.header, history.events)
            record = await store.get_run(history.run_id)
            assert record == expected
            if expected is not None:
                assert record is not None
                assert record.to_wire() == expected.to_wire()
                assert (await store.list_runs()).runs == [expected.pointer()]
            # The stream holds exactly what was appended (never the header).
            page = await store.read(run_stream(history.run_id), limit=1000)
            assert [e.data for e in page.events] == history.events
            assert await store.rebuild_records() == (0 if expected is None else 1)
            assert await store.get_run(history.run_id) == expected

    async def test_paging_from_any_offset_yields_exactly_the_events_after_it(
        self, length: int, batch_size: int, start: int | str, limit: int, closed: bool
    ) -> None:
        path = "agents/prop/stream"
        events = [log_event(index=i) for i in range(length)]
        async with self.fresh_store() as store:
            await store.create_stream(path)
            for first in range(0, length, batch_size):
                await store.append(path, events[first : first + batch_size])
            if closed:
                await store.close_stream(path)
            assert await store.stream_meta(path) == StreamMeta(
                format_offset(length - 1), length, closed
            )

            offset = start if isinstance(start, str) else format_offset(start)
            expected = [] if start == "now" else events[max(int(start), -1) + 1 :]
            collected: list[tuple[int, dict[str, Any]]] = []
            pages = 0
            while True:
                page = await store.read(path, offset=offset, limit=limit)
                pages += 1
                assert pages <= length + 2, "paging does not terminate"
                assert len(page.events) <= limit
                assert page.closed is closed
                if page.events:
                    assert page.next_offset == page.events[-1].offset
                elif offset == "now":
                    assert page.next_offset == format_offset(length - 1)
                else:
                    assert page.next_offset == offset
                for event in page.events:
                    assert event.offset == format_offset(event.seq)
                    collected.append((event.seq, event.data))
                if page.up_to_date:
                    break
                assert page.events, "a page that is not up to date must make progress"
                offset = page.next_offset

            seqs = [seq for seq, _ in collected]
            assert seqs == sorted(set(seqs)), "events repeat or come out of order"
            assert [data for _, data in collected] == expected
            assert pages == max(1, -(-len(expected) // limit))
