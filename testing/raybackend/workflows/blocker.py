"""Blocks in a model call until cancelled."""

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def blocker(ctx: ActionContext[None]) -> None:
    import asyncio

    await asyncio.Event().wait()
