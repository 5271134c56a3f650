"""What makes a batched turn durable: its custom_id (the same in every life of the run, unique
across runs, turns and attempts, as the API allows) and the healing search a resumed run makes
for a batch created just before a crash, before its log recorded it."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flue_actors.models import MessageBatchCollector, ModelBatches
from flue_actors.models._message_batches import turn_custom_id
from flue_actors.testing import AnthropicApi

MODEL = "claude-haiku-4-5"
BODY = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
ids = st.text(min_size=1, max_size=80)


@given(ids, ids, st.integers(0, 50), ids, ids, st.integers(0, 50))
def test_custom_ids_fit_the_api_and_tell_turns_apart(
    run: str, turn: str, attempt: int, other_run: str, other_turn: str, other_attempt: int
) -> None:
    custom_id = turn_custom_id(run, turn, attempt)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", custom_id)
    assert turn_custom_id(run, turn, attempt) == custom_id
    if (run, turn, attempt) != (other_run, other_turn, other_attempt):
        assert turn_custom_id(other_run, other_turn, other_attempt) != custom_id


async def _submitted_before_the_crash(api: AnthropicApi, custom_id: str) -> str:
    """A batch a previous life of the run created (and died before recording)."""
    batch = await api.provider.sdk_client().messages.batches.create(
        requests=[{"custom_id": custom_id, "params": BODY}]  # type: ignore[typeddict-item]
    )
    return batch.id


async def _fast() -> None:
    await asyncio.sleep(0)


async def test_a_healing_turn_finds_its_request_instead_of_submitting_it_again(
    anthropic_api: AnthropicApi,
) -> None:
    anthropic_api.batches.processing_seconds = None  # still processing when the run resumes
    anthropic_api.reply("answered once")
    custom_id = turn_custom_id("run_1", "turn_1", 0)
    since = anthropic_api.batches.now() - 1
    created = await _submitted_before_the_crash(anthropic_api, custom_id)
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client,
        ModelBatches(max_requests=1, window=math.inf, sleep=anthropic_api.poll_sleep),
    )
    found = asyncio.ensure_future(collector.enqueue(custom_id, BODY, since=since))
    # Only results name their requests: it polls the batch and waits for it to end.
    await anthropic_api.wait_for_parked_polls(1)
    assert not found.done()
    anthropic_api.batches.complete()
    assert await found == created
    result = await collector.result(created, custom_id)
    assert result.type == "succeeded"
    assert result.result["message"]["content"][0]["text"] == "answered once"
    assert anthropic_api.batches.created == 1
    assert len(anthropic_api.batches.requests) == 1
    progress = await collector.progress()
    assert (progress["batches"], progress["done"], progress["waiting"]) == (0, 1, 0)
    await collector.aclose()


async def test_a_healing_turn_submits_when_no_batch_since_holds_it(
    anthropic_api: AnthropicApi,
) -> None:
    other = turn_custom_id("run_1", "turn_0", 0)
    for answer in ("a", "b", "c", "fresh"):
        anthropic_api.reply(answer)
    await _submitted_before_the_crash(anthropic_api, other)  # ended, does not hold the turn
    anthropic_api.batches.advance(3600)
    await _submitted_before_the_crash(anthropic_api, "older-than-the-log")
    anthropic_api.batches.advance(3600)
    since = anthropic_api.batches.now() - 10  # the two batches above are older
    await _submitted_before_the_crash(anthropic_api, other + "-x")
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client,
        ModelBatches(max_requests=1, window=math.inf, sleep=lambda _s: _fast()),
    )
    custom_id = turn_custom_id("run_1", "turn_1", 0)
    batch_id = await collector.enqueue(custom_id, BODY, since=since)
    assert anthropic_api.batches.created == 4
    assert anthropic_api.batches.requests[-1]["custom_id"] == custom_id
    assert (await collector.result(batch_id, custom_id)).type == "succeeded"
    await collector.aclose()


async def test_a_custom_id_the_api_would_refuse_is_refused_here(
    anthropic_api: AnthropicApi,
) -> None:
    collector = MessageBatchCollector(anthropic_api.provider.sdk_client, ModelBatches())
    with pytest.raises(Exception, match="1-64 letters"):
        await collector.enqueue("has spaces", BODY)
    assert anthropic_api.batches.created == 0
    await collector.aclose()


async def test_a_collector_forgets_a_batch_once_its_results_are_collected(
    anthropic_api: AnthropicApi,
) -> None:
    collector = MessageBatchCollector(
        anthropic_api.provider.sdk_client,
        ModelBatches(max_requests=2, window=math.inf, sleep=lambda _s: _fast()),
    )
    anthropic_api.reply("one")
    anthropic_api.reply("two")
    first, second = await asyncio.gather(collector.submit(BODY), collector.submit(BODY))
    assert {first.type, second.type} == {"succeeded"}
    assert first.batch_id == second.batch_id
    assert collector._outcomes == {}
    assert collector._carried == {}
    await collector.aclose()
