"""``runtime.batch(..., model_batches=)``: a batch's model turns go through the Message Batches
API while the same runtime's other runs keep the Messages API; the runs' headers carry the
settings, so a run resumed in another runtime (built without model batches) re-attaches to its
batch instead of sending its turn again."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    ModelBatches,
    ModelRegistry,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_workflow,
)
from flue_actors._clock import SystemClock
from flue_actors._harness.batch_records import BATCH_RECORD_MESSAGE
from flue_actors._runtime.recovery import end_orphaned_runs
from flue_actors.models import RetryPolicy
from flue_actors.store import run_stream
from flue_actors.testing import AnthropicApi


class Sleeps:
    """Retries without waiting."""

    async def __call__(self, seconds: float) -> None:
        await asyncio.sleep(0)


class Text(BaseModel):
    text: str


writer = define_agent(model="anthropic/claude-haiku-4-5", thinking_level="off")


@define_workflow(agent=writer)
async def echo_once(ctx: ActionContext[Text]) -> Text:
    session = await ctx.harness.session()
    return Text(text=(await session.prompt(ctx.input.text)).text)


def _runtime(store: Path) -> Runtime:
    return Runtime(
        {"echo_once": echo_once},
        store=SqliteEventStore(str(store)),
        models=ModelRegistry(retry=RetryPolicy(sleep=Sleeps(), jitter=lambda: 0.0)),
    )


async def _events(runtime: Runtime, run_id: str) -> list[dict[str, Any]]:
    page = await runtime.store.read(run_stream(run_id), offset="-1", limit=1000)
    return [event.data for event in page.events]


async def _until_recorded(runtime: Runtime, run_id: str) -> None:
    """Until the run's log holds its turn's batch record (woken by appends, not polling)."""
    path = run_stream(run_id)
    while True:
        meta = await runtime.store.stream_meta(path)  # before reading: no lost wake-up
        events = await _events(runtime, run_id)
        if any(event.get("message") == BATCH_RECORD_MESSAGE for event in events):
            return
        length = meta.length if meta is not None else 0
        assert await runtime.store.wait_for_append(path, length=length, timeout=10)


@pytest.fixture(autouse=True)
def _agents_own_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUE_MODEL", raising=False)


async def test_a_batchs_turns_go_through_message_batches_and_other_runs_do_not(
    anthropic_api: AnthropicApi, tmp_path: Path
) -> None:
    runs = 5
    for n in range(runs + 1):
        anthropic_api.reply(f"answer {n}")
    settings = ModelBatches(max_requests=runs, window=math.inf, sleep=anthropic_api.poll_sleep)
    async with _runtime(tmp_path / "runs.db") as runtime:
        assert runtime.services.models.model_batches is None
        inputs = [{"text": f"document {n}"} for n in range(runs)]
        items = [item async for item in runtime.batch("echo_once", inputs, model_batches=settings)]
        alone = await runtime.run("echo_once", {"text": "not batched"})
        progress = await runtime.model_batch_progress(settings)
        assert await runtime.model_batch_progress() is None
        header = await runtime.store.read_header(items[0].run_id)  # type: ignore[arg-type]
        alone_header = await runtime.store.read_header(alone.run_id)
    assert sorted(str(item.result["text"]) for item in items) == [  # type: ignore[index,call-overload]
        f"answer {n}" for n in range(runs)
    ]
    assert alone.result == {"text": f"answer {runs}"}
    # The batch's runs: one message batch of all their turns; the other run: one plain call.
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == runs
    assert len(anthropic_api.requests) == 1
    assert progress == {"pending": 0, "waiting": 0, "done": runs, "submitted": runs, "batches": 1}
    assert header is not None
    assert alone_header is not None
    assert ModelBatches.from_wire(header["modelBatches"]) == settings
    assert "modelBatches" not in alone_header


async def test_the_runtimes_own_settings_share_its_collector(
    anthropic_api: AnthropicApi, tmp_path: Path
) -> None:
    for _ in range(4):
        anthropic_api.reply("answer")
    settings = ModelBatches(max_requests=4, window=math.inf, sleep=anthropic_api.poll_sleep)
    async with Runtime(
        {"echo_once": echo_once}, store=SqliteEventStore(str(tmp_path / "r.db")),
        model_batches=settings,
    ) as runtime:  # fmt: skip
        assert runtime.services.batched_models(settings) is runtime.services.models
        batched = runtime.batch("echo_once", [{"text": "a"}, {"text": "b"}], model_batches=settings)
        together = asyncio.gather(
            runtime.run("echo_once", {"text": "c"}), runtime.run("echo_once", {"text": "d"})
        )
        items = [item async for item in batched]
        assert [record.status for record in await together] == ["completed"] * 2
        assert [item.status for item in items] == ["completed"] * 2
    # The batch's two turns and the runtime's other two went out together.
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == 4


async def test_a_resumed_run_of_a_batch_reattaches_in_a_runtime_without_model_batches(
    anthropic_api: AnthropicApi, tmp_path: Path
) -> None:
    anthropic_api.batches.processing_seconds = None  # processing until completed here
    anthropic_api.reply("first answer")
    anthropic_api.reply("second answer")
    settings = ModelBatches(max_requests=2, window=math.inf, sleep=anthropic_api.poll_sleep)
    store = tmp_path / "runs.db"
    first = _runtime(store)
    batch = first.batch("echo_once", [{"text": "one"}, {"text": "two"}], model_batches=settings)
    consuming = asyncio.ensure_future(anext(batch))
    await anthropic_api.wait_for_batches(1)
    run_ids = [record.run_id for record in (await first.list_runs()).runs]
    for run_id in run_ids:
        await _until_recorded(first, run_id)
    # A turn waits on its batch right after writing its record.
    assert (await first.model_batch_progress(settings) or {}).get("waiting") == 2
    await first.close(grace_seconds=0)  # the runs stop where they are, to be resumed
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    await batch.aclose()  # type: ignore[attr-defined]

    anthropic_api.batches.complete()
    async with _runtime(store) as second:  # built without model batches
        # The next process to sweep the store (here at once: the lease is taken as expired)
        # resumes the orphaned runs, by replay.
        stale = SystemClock().now_ms() + 1
        resume = second.backend.resume  # type: ignore[attr-defined]
        assert await end_orphaned_runs(
            second.store, second.clock, stale_before_ms=stale, resume=resume
        ) == []  # fmt: skip
        records = [await second.wait(run_id, timeout=10) for run_id in run_ids]
        events = [await _events(second, run_id) for run_id in run_ids]
    assert [record.status for record in records] == ["completed", "completed"]
    assert sorted(str(record.result["text"]) for record in records) == [  # type: ignore[index,call-overload]
        "first answer",
        "second answer",
    ]
    # Nothing sent again: the one batch, no Messages API call.
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == 2
    assert anthropic_api.requests == []
    for run_events in events:
        types = [event["type"] for event in run_events]
        assert "run_resume" in types
        (turn,) = [event for event in run_events if event["type"] == "turn"]
        assert turn["response"]["batch"]["id"] == anthropic_api.batches.views()[0]["id"]


async def test_a_run_resumed_with_nothing_in_its_log_finds_the_batch_it_made(
    anthropic_api: AnthropicApi, tmp_path: Path
) -> None:
    """Killed before any of its events was written, after its turn's batch was created: the
    resumed run searches the batches made since its admission and takes its answer from that
    one instead of submitting the turn again."""
    anthropic_api.batches.processing_seconds = None
    anthropic_api.reply("answered once")
    settings = ModelBatches(max_requests=1, window=math.inf, sleep=anthropic_api.poll_sleep)
    first = _runtime(tmp_path / "first.db")
    batch = first.batch("echo_once", [{"text": "one"}], model_batches=settings)
    consuming = asyncio.ensure_future(anext(batch))
    await anthropic_api.wait_for_batches(1)
    (record,) = (await first.list_runs()).runs
    header = await first.store.read_header(record.run_id)
    await first.close(grace_seconds=0)
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    await batch.aclose()  # type: ignore[attr-defined]
    assert header is not None

    # The same run in a store that holds its header and none of its events.
    anthropic_api.batches.complete()
    async with _runtime(tmp_path / "second.db") as second:
        await second.store.admit_run(header, owner="a-process-that-died")
        assert await second.backend.resume(record.run_id)  # type: ignore[attr-defined]
        resumed = await second.wait(record.run_id, timeout=10)
    assert resumed.status == "completed"
    assert resumed.result == {"text": "answered once"}
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == 1
    assert anthropic_api.requests == []
