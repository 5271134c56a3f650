"""The sleeper, not resumed after a crash: its runs end run_interrupted (fault tests)."""

import asyncio
import os

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class SleeperInput(BaseModel):
    seconds: float = 0.0


@define_workflow(agent=define_agent(model="fake/echo"), recovery="fail")
async def fragile(ctx: ActionContext[SleeperInput]) -> dict[str, object]:
    import ray

    await asyncio.sleep(ctx.input.seconds)
    return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}
