"""Imports on the driver, fails to import inside a Ray actor (a dependency missing on workers)."""

import ray

from flue_actors import ActionContext, define_agent, define_workflow

if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
    raise ImportError("No module named 'only_on_the_driver'")


@define_workflow(agent=define_agent(model="fake/echo"))
async def worker_only_failure(ctx: ActionContext[None]) -> None:
    return None
