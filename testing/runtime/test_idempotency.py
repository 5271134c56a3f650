"""Idempotent invocation (issue 12.4), bulk admission and ``Runtime.batch`` (issue 13.1), on
the SQLite and PostgreSQL stores, through ``Runtime`` itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from store.conftest import drop_scratch_schemas, open_backend

from flue_actors import (
    ActionContext,
    IdempotencyKeyConflictError,
    Runtime,
    WorkflowDefinition,
    define_agent,
    define_workflow,
)
from flue_actors.errors import IdempotencyKeyInvalidError
from flue_actors.store import EventStore, input_fingerprint

STORES = ["sqlite-file", "postgres"]
AGENT = define_agent(model="fake/echo")


class Item(BaseModel):
    text: str


class Gate:
    """Where gated runs wait until the test opens it; ``until_waiting`` waits for runs to
    arrive there (woken by each arrival, not by polling)."""

    def __init__(self) -> None:
        self._opened = asyncio.Event()
        self._arrivals = asyncio.Condition()
        self.waiting = 0

    def open(self) -> None:
        self._opened.set()

    async def pass_through(self) -> None:
        async with self._arrivals:
            self.waiting += 1
            self._arrivals.notify_all()
        try:
            await self._opened.wait()
        finally:
            self.waiting -= 1

    async def until_waiting(self, count: int) -> None:
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(lambda: self.waiting >= count), 5)


def _workflows(gate: Gate | None = None) -> dict[str, WorkflowDefinition]:
    @define_workflow(agent=AGENT)
    async def upper(ctx: ActionContext[Item]) -> str:
        if gate is not None:
            await gate.pass_through()
        return ctx.input.text.upper()

    @define_workflow(agent=AGENT)
    async def lower(ctx: ActionContext[Item]) -> str:
        return ctx.input.text.lower()

    return {"upper": upper, "lower": lower}


RuntimeFactory = Callable[..., Runtime]


@pytest_asyncio.fixture(params=STORES)
async def make_runtime(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RuntimeFactory]:
    made: list[Runtime] = []
    stores: list[EventStore] = []

    def make(gate: Gate | None = None, *, share: bool = False) -> Runtime:
        store = stores[0] if share and stores else open_backend(request.param, tmp_path)
        if store not in stores:
            stores.append(store)
        runtime = Runtime(_workflows(gate), store=store)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.store = _Unclosed(runtime.store)
        await runtime.close()
    for store in stores:
        await store.close()
    await drop_scratch_schemas()


class _Unclosed:
    """Runtimes sharing one store must not close it under each other: the fixture does."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_repeated_key_with_the_same_input_returns_the_first_run(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    first = await runtime.invoke("upper", {"text": "a"}, idempotency_key="k1")
    assert first.created
    again = await runtime.invoke("upper", {"text": "a"}, idempotency_key="k1")
    assert (again.run_id, again.created) == (first.run_id, False)
    record = await runtime.wait(first.run_id, timeout=5)
    assert record.result == "A"
    page = await runtime.list_runs(workflow_name="upper")
    assert [run.run_id for run in page.runs] == [first.run_id]


async def test_a_repeated_key_with_other_input_is_a_typed_conflict(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    first = await runtime.invoke("upper", {"text": "a"}, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyConflictError) as raised:
        await runtime.invoke("upper", {"text": "b"}, idempotency_key="k1")
    assert raised.value.type == "idempotency_key_conflict"
    assert raised.value.status == 409
    assert raised.value.meta == {"workflow": "upper", "idempotencyKey": "k1", "runId": first.run_id}
    assert len((await runtime.list_runs()).runs) == 1


async def test_keys_are_scoped_per_workflow_and_unkeyed_runs_are_independent(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    a = await runtime.invoke("upper", {"text": "a"}, idempotency_key="same")
    b = await runtime.invoke("lower", {"text": "b"}, idempotency_key="same")
    assert a.run_id != b.run_id
    assert b.created
    c = await runtime.invoke("upper", {"text": "a"})
    d = await runtime.invoke("upper", {"text": "a"})
    assert len({a.run_id, c.run_id, d.run_id}) == 3


@pytest.mark.parametrize("key", ["", "x" * 256, "line\nbreak", 7])
async def test_an_unusable_key_is_refused_before_admission(
    make_runtime: RuntimeFactory, key: Any
) -> None:
    runtime = make_runtime()
    with pytest.raises(IdempotencyKeyInvalidError):
        await runtime.invoke("upper", {"text": "a"}, idempotency_key=key)
    assert (await runtime.list_runs()).runs == []


async def test_concurrent_invocations_with_one_key_make_one_run(
    make_runtime: RuntimeFactory,
) -> None:
    """Two runtimes on one store race the same key (the pre-check finds nothing for either):
    the claim in the admission transaction lets exactly one run exist."""
    gate = Gate()
    first, second = make_runtime(gate), make_runtime(gate, share=True)
    receipts = await asyncio.gather(
        *(
            runtime.invoke("upper", {"text": "race"}, idempotency_key="once")
            for runtime in (first, second, first, second)
        )
    )
    assert len({receipt.run_id for receipt in receipts}) == 1
    assert sum(receipt.created for receipt in receipts) == 1
    assert len((await first.list_runs()).runs) == 1
    gate.open()
    assert (await first.wait(receipts[0].run_id, timeout=5)).result == "RACE"


async def test_invoke_many_admits_in_order_and_honours_keys(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    earlier = await runtime.invoke("upper", {"text": "b"}, idempotency_key="kb")
    receipts = await runtime.invoke_many(
        "upper",
        [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "a"}],
        keys=["ka", "kb", None, "ka"],
    )
    assert receipts[1].run_id == earlier.run_id
    assert not receipts[1].created
    # The same key twice in one call: one run, found by the second.
    assert receipts[3].run_id == receipts[0].run_id
    assert [receipt.created for receipt in receipts] == [True, False, True, False]
    for receipt, text in zip(receipts, "ABCA", strict=True):
        assert (await runtime.wait(receipt.run_id, timeout=5)).result == text
    with pytest.raises(IdempotencyKeyConflictError):
        await runtime.invoke_many("upper", [{"text": "z"}], keys=["ka"])


async def test_batch_yields_every_item_once_in_completion_order(
    make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()
    waited: list[str] = []
    wait = runtime.wait

    async def counted(run_id: str, **options: Any) -> Any:
        waited.append(run_id)
        return await wait(run_id, **options)

    monkeypatch.setattr(runtime, "wait", counted)

    def inputs() -> Any:
        for n in range(40):
            yield {"text": f"t{n}", "id": n} if n != 7 else {"wrong": 1}

    items = [item async for item in runtime.batch("upper", inputs(), concurrency=5, key="id")]
    # Each run's record came from its own end, none read back from the store, and it is the
    # record the store holds.
    assert waited == []
    for item in items:
        if item.record is not None:
            assert item.record == await runtime.get_run(item.record.run_id)
    assert sorted(item.index for item in items) == list(range(40))
    by_index = {item.index: item for item in items}
    assert by_index[7].status == "errored"
    assert by_index[7].run_id is None
    assert by_index[7].refusal is not None
    assert by_index[7].refusal.type == "batch_input_invalid"  # no "id" field to key it by
    assert by_index[3].result == "T3"
    assert by_index[3].key == "3"
    assert sum(item.ok for item in items) == 39
    # Again with the same keys: every run is found, none is made.
    again = [item async for item in runtime.batch("upper", inputs(), concurrency=5, key="id")]
    assert sum(item.resumed for item in again) == 39
    assert {item.run_id for item in again} == {item.run_id for item in items}
    assert len((await runtime.list_runs(limit=1000)).runs) == 39


async def test_batch_respects_concurrency_and_reads_inputs_lazily(
    make_runtime: RuntimeFactory,
) -> None:
    gate = Gate()
    runtime = make_runtime(gate)
    pulled = 0

    async def inputs() -> AsyncIterator[dict[str, str]]:
        nonlocal pulled
        for n in range(1000):
            pulled += 1
            yield {"text": str(n)}

    batch = runtime.batch("upper", inputs(), concurrency=3)
    assert isinstance(batch, AsyncGenerator)
    first = asyncio.ensure_future(batch.__anext__())
    await gate.until_waiting(3)
    # Three running, no more, and a bounded queue read ahead: far from all 1000 inputs.
    assert runtime.backend.active == 3  # type: ignore[attr-defined]
    assert pulled < 300
    gate.open()
    item = await first
    assert item.ok
    await batch.aclose()  # a consumer may stop early; the admitted runs still end


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=10,
    )
)
def test_the_fingerprint_ignores_key_order_only(value: Any) -> None:
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert input_fingerprint(reordered) == input_fingerprint(value)
    assert input_fingerprint([value]) != input_fingerprint(value)
