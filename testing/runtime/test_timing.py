"""A run's timing is self-consistent: endedAt - startedAt == durationMs == run_end's timestamp."""

from __future__ import annotations

from flue_actors import ActionContext, Runtime, SqliteEventStore, define_agent, define_workflow
from flue_actors._clock import StepClock, parse_timestamp
from flue_actors._ids import SequentialIds
from flue_actors.models import ModelRegistry


@define_workflow(agent=define_agent(model="fake/echo"))
async def chatty(ctx: ActionContext[None]) -> str:
    for i in range(5):
        ctx.log.info("step", i=i)
    session = await ctx.harness.session()
    return (await session.prompt("hello")).text


async def test_ended_at_minus_started_at_is_the_duration() -> None:
    runtime = Runtime(
        {"chatty": chatty},
        store=SqliteEventStore(),
        models=ModelRegistry(),
        clock=StepClock(step_ms=7),
        ids=SequentialIds(),
        env={},
    )
    async with runtime:
        record = await runtime.run("chatty")
        events = await runtime.events(record.run_id)

    assert record.status == "completed"
    assert record.ended_at is not None
    assert record.duration_ms is not None
    assert parse_timestamp(record.ended_at) - parse_timestamp(record.started_at) == (
        record.duration_ms
    )
    assert events[-1]["type"] == "run_end"
    assert events[-1]["timestamp"] == record.ended_at
    assert events[-1]["durationMs"] == record.duration_ms
    # Every event before run_end was stamped earlier than it.
    assert all(event["timestamp"] <= record.ended_at for event in events)
