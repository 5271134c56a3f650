"""Runs of ``workflows/summarize.py`` with model batches against the out-of-process fake
Messages API: every turn batched, results routed back by custom_id, half the cost."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from flue_actors import ModelBatches, Runtime
from flue_actors.store import run_stream
from flue_actors.testing.messages_server import MessagesServer

WORKFLOWS = str(Path(__file__).resolve().parents[2] / "workflows")


async def _costs(runtime: Runtime, run_ids: list[str]) -> list[float]:
    costs = []
    for run_id in run_ids:
        page = await runtime.store.read(run_stream(run_id), offset="-1", limit=1000)
        costs.append(
            sum(
                event.data["usage"]["cost"]["total"]
                for event in page.events
                if event.data["type"] == "operation"
            )
        )
    return costs


async def _summaries(
    tmp_path: Path, name: str, settings: ModelBatches | None, texts: list[str]
) -> tuple[list[object], list[float]]:
    async with Runtime(
        WORKFLOWS, store=f"sqlite:///{tmp_path / name}", model_batches=settings
    ) as runtime:
        receipts = [await runtime.invoke("summarize", {"text": text}) for text in texts]
        records = await asyncio.gather(*(runtime.wait(r.run_id) for r in receipts))
        costs = await _costs(runtime, [receipt.run_id for receipt in receipts])
    return [record.result for record in records], costs


async def test_summaries_go_through_batches_at_half_the_cost(
    messages_server: MessagesServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUE_MODEL", raising=False)
    # Batches end only when told: the collector's first poll tells the server to end them.
    messages_server.batch_processing(None)
    polls: list[float] = []

    async def poll(seconds: float) -> None:
        polls.append(seconds)
        messages_server.complete_batches()
        await asyncio.sleep(0)

    texts = [f"text number {n}" for n in range(6)]
    settings = ModelBatches(max_requests=3, window=math.inf, poll_interval=7.0, sleep=poll)
    results, batched_costs = await _summaries(tmp_path, "batched.db", settings, texts)
    # Each run got the answer to its own request, though results come back in reverse order.
    assert results == [{"summary": f"SUMMARY: {text}"} for text in texts]
    batches = messages_server.batches()
    assert len(batches) == 2
    assert [batch["request_counts"]["succeeded"] for batch in batches] == [3, 3]
    assert messages_server.batched_requests() == 6
    assert not [r for r in messages_server.requests() if r["path"] == "/v1/messages"]
    assert polls[:2] == [7.0, 7.0]  # one poll per batch found it ended

    plain_view = messages_server.for_test()
    plain_results, plain_costs = await _summaries(tmp_path, "plain.db", None, texts)
    assert plain_results == results
    assert len([r for r in plain_view.requests() if r["path"] == "/v1/messages"]) == 6
    for batched, plain in zip(batched_costs, plain_costs, strict=True):
        assert plain > 0
        assert batched == pytest.approx(plain / 2)
