"""A workflow whose runs each get a Ray actor of their own."""

import os

from flue_actors import ActionContext, Placement, define_agent, define_workflow


@define_workflow(
    agent=define_agent(model="fake/echo"),
    placement=Placement(isolation="process", num_cpus=1),
)
async def isolated(ctx: ActionContext[None]) -> dict[str, object]:
    import ray

    return {"pid": os.getpid(), "actor": ray.get_runtime_context().get_actor_name()}
