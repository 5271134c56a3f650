"""Rate limits shared by every run of a batch (issue 13.4): the in-process limiter's pacing,
and a 429 or 529 cooling every caller down instead of failing the run."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import ActionContext, Runtime, SqliteEventStore, define_agent, define_workflow
from flue_actors.models import MinuteBudget, ModelRegistry, RateLimits, Usage
from flue_actors.testing import FakeModel


class FakeTime:
    """A clock that only sleeps move: the limiter's waits, recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.integers(1, 120),
    sizes=st.lists(st.integers(1, 500), min_size=1, max_size=60),
    token_limit=st.integers(500, 5000),
)
def test_no_window_from_the_start_gets_more_than_a_minutes_burst_plus_the_rate(
    per_minute: int, sizes: list[int], token_limit: int
) -> None:
    time = FakeTime()
    budget = MinuteBudget(RateLimits(per_minute, token_limit), clock=time.clock, sleep=time.sleep)
    granted: list[tuple[float, int]] = []

    async def go() -> None:
        for size in sizes:
            await budget.acquire(size)
            granted.append((time.now, size))

    asyncio.run(go())
    for at, _ in granted:
        requests = sum(1 for when, _ in granted if when <= at)
        tokens = sum(size for when, size in granted if when <= at)
        assert requests <= per_minute + per_minute * at / 60 + 1e-6
        # A request larger than the bucket waits for a full bucket, then goes alone.
        largest = max(size for when, size in granted if when <= at)
        assert tokens <= max(token_limit, largest) + token_limit * at / 60 + largest
    assert budget.throttled_seconds == pytest.approx(sum(time.sleeps))


def test_output_tokens_are_paid_after_the_response_and_hold_later_requests() -> None:
    time = FakeTime()
    budget = MinuteBudget(
        RateLimits(output_tokens_per_minute=600), clock=time.clock, sleep=time.sleep
    )

    async def go() -> None:
        await budget.acquire(10)
        await budget.settle(10, 10, 1200)  # a full bucket (600) less 1200: 600 of debt
        await budget.acquire(10)

    asyncio.run(go())
    assert time.now == pytest.approx(60.1, abs=0.01)  # the debt and one token, at 10/s


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.integers(1, 900), st.integers(0, 3000), st.floats(0, 90)),
        min_size=1,
        max_size=20,
    ),
    cooling=st.floats(0, 120),
)
def test_a_budget_is_at_rest_only_once_a_new_one_would_grant_what_it_grants(
    calls: list[tuple[int, int, float]], cooling: float
) -> None:
    # A budget at rest may be forgotten (the Ray limiter's actor exits when idle and at rest,
    # and is made again on the next call): a new budget must then grant exactly as it would.
    limits = RateLimits(requests_per_minute=120, input_tokens_per_minute=3000,
                        output_tokens_per_minute=1200)  # fmt: skip
    time = FakeTime()
    budget = MinuteBudget(limits, clock=time.clock, sleep=time.sleep)
    assert budget.at_rest()

    async def go() -> None:
        for input_tokens, output_tokens, pause in calls:
            await budget.acquire(input_tokens)
            await budget.settle(input_tokens, input_tokens, output_tokens)
            time.now += pause
        await budget.cool_down(cooling)

    asyncio.run(go())
    resting_at = time.now
    while not budget.at_rest():
        time.now += 0.5
    # Never sooner than the cool-down ends, and never later than a minute after it and the
    # deepest debt (one call's output over a minute's worth, at most 2.5 minutes of refill).
    assert time.now >= resting_at + cooling - 0.5
    assert time.now <= resting_at + cooling + 60 + 150 + 0.5
    # At rest: what it grants now takes as long as with a new budget.
    fresh_time = FakeTime()
    fresh_time.now = time.now
    fresh = MinuteBudget(limits, clock=fresh_time.clock, sleep=fresh_time.sleep)

    async def burst(on: MinuteBudget) -> None:
        for _ in range(130):
            await on.acquire(20)

    asyncio.run(burst(budget))
    asyncio.run(burst(fresh))
    assert time.now == pytest.approx(fresh_time.now)


class Text(BaseModel):
    text: str


AGENT = define_agent(model="fake/echo")


@define_workflow(agent=AGENT)
async def ask(ctx: ActionContext[Text]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt(ctx.input.text)).text


@pytest.mark.parametrize("status", [429, 529])
async def test_a_429_or_529_cools_the_batch_down_instead_of_failing_the_run(status: int) -> None:
    time = FakeTime()
    budget = MinuteBudget(RateLimits(requests_per_minute=6000), clock=time.clock, sleep=time.sleep)
    model = FakeModel()
    model.fail(status=status, retry_after=7.0).fail(status=status).reply("ok", usage=Usage(5, 2))
    for _ in range(3):
        model.reply("ok", usage=Usage(5, 2))
    registry = ModelRegistry(override=model, limiter=budget)
    async with Runtime({"ask": ask}, store=SqliteEventStore(), models=registry, env={}) as runtime:
        items = [item async for item in runtime.batch("ask", [{"text": str(n)} for n in range(4)])]
        # No retry of the harness's own was used: the runs' logs hold no model-retry warning.
        for item in items:
            assert item.run_id is not None
            events = await runtime_events(item.run_id, runtime)
            assert not any("model-retry" in str(event.get("message", "")) for event in events)
    assert [item.status for item in items] == ["completed"] * 4
    # Every run's first request waited out the shared cool-down (7 s, the retry-after).
    assert time.sleeps
    assert max(time.sleeps) >= 7.0
    assert budget.cooldowns == 2
    assert len(model.requests) == 6  # two refused calls, then one per run


async def runtime_events(run_id: str, runtime: Runtime) -> list[dict[str, object]]:
    return [event.data for event in (await runtime.read_events(run_id, limit=1000)).events]
