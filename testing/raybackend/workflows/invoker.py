"""Invokes sleeper from inside its run and waits for it (ambient invocation on a Ray host)."""

import os

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def invoker(ctx: ActionContext[None]) -> dict[str, object]:
    record = await ctx.invoke("sleeper", {"seconds": 0}, wait=True)
    return {"pid": os.getpid(), "child": record.run_id, "childResult": record.result}
