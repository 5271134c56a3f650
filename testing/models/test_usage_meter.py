"""A registry's usage meter: every model call answered is counted once as it returns, through
the rate limiter too, and a call refused (429) costs nothing (issue 13: a batch's totals
without reading its runs' logs)."""

from __future__ import annotations

from pydantic import BaseModel

from flue_actors import ActionContext, Runtime, SqliteEventStore, define_agent, define_workflow
from flue_actors.models import (
    Cost,
    MinuteBudget,
    ModelRegistry,
    RateLimits,
    Usage,
    UsageMeter,
)
from flue_actors.testing import FakeModel

from .test_rate_limits import FakeTime


class Text(BaseModel):
    text: str


@define_workflow(agent=define_agent(model="fake/echo"))
async def ask_twice(ctx: ActionContext[Text]) -> str:
    session = await ctx.harness.session()
    await session.prompt(ctx.input.text)
    return (await session.prompt("again")).text


async def test_the_meter_counts_every_answered_call_of_every_run_once() -> None:
    model = FakeModel()
    model.fail(status=429, retry_after=0.0)  # refused, then sent again by the limiter
    for n in range(8):
        model.reply("ok", usage=Usage(10 + n, 2 + n, 1, 0, Cost(0.5, 0.25, 0.0, 0.0)))
    meter = UsageMeter()
    time = FakeTime()
    budget = MinuteBudget(RateLimits(requests_per_minute=6000), clock=time.clock, sleep=time.sleep)
    registry = ModelRegistry(override=model, limiter=budget, meter=meter)
    async with Runtime(
        {"ask_twice": ask_twice}, store=SqliteEventStore(), models=registry, env={}
    ) as runtime:
        inputs = [{"text": str(n)} for n in range(4)]
        items = [item async for item in runtime.batch("ask_twice", inputs)]
    assert [item.status for item in items] == ["completed"] * 4
    assert budget.cooldowns == 1
    assert meter.calls == 8
    assert meter.total == Usage(
        sum(10 + n for n in range(8)), sum(2 + n for n in range(8)), 8, 0, Cost(4.0, 2.0, 0, 0)
    )


def test_a_registry_with_model_batches_keeps_its_meter() -> None:
    from flue_actors.models import ModelBatches

    meter = UsageMeter()
    registry = ModelRegistry(meter=meter).with_model_batches(ModelBatches())
    assert registry.meter is meter
