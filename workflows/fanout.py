"""fanout: classify many items at once, one delegated task per item, run concurrently.

A session runs one operation at a time, so each item gets its own session, and each of those
delegates to the ``classifier`` subagent with ``task(..., result=Label)``. The workflow gathers
the labels in input order.

    FLUE_MODEL=anthropic/claude-haiku-4-5 flue-actors run fanout \\
        --input '{"items":["I love it","Broken on arrival"]}'

"""

import asyncio
from typing import Literal

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_agent_profile, define_workflow


class FanoutInput(BaseModel):
    items: list[str]


class Label(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


class Labeled(BaseModel):
    item: str
    sentiment: str


class FanoutOutput(BaseModel):
    results: list[Labeled]


classifier = define_agent_profile(
    name="classifier",
    instructions="Classify the sentiment of the text you are given.",
)

agent = define_agent(
    model="anthropic/claude-haiku-4-5",
    instructions="You coordinate classification work.",
    subagents=[classifier],
)


@define_workflow(agent=agent)
async def fanout(ctx: ActionContext[FanoutInput]) -> FanoutOutput:
    async def classify(index: int, item: str) -> Labeled:
        session = await ctx.harness.session(f"item-{index}")
        response = await session.task(item, agent="classifier", result=Label)
        return Labeled(item=item, sentiment=response.data.sentiment)

    labeled = await asyncio.gather(*(classify(i, item) for i, item in enumerate(ctx.input.items)))
    return FanoutOutput(results=list(labeled))


async def route() -> None:
    """HTTP exposure of POST /workflows/fanout: every request is allowed."""


async def runs() -> None:
    """HTTP exposure of /runs/<runId> for fanout runs: every request is allowed."""
