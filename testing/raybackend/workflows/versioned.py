"""Says which code and model it ran with, and what its host's environment holds (for the
deployment tests, which edit VERSION and change FLUE_MODEL between serves, and run it one run
at a time)."""

import os

from flue_actors import ActionContext, AgentConfig, AgentContext, define_agent, define_workflow

VERSION = "one"
_SEEN_ENV: dict[str, str] = {}


def _agent(ctx: AgentContext) -> AgentConfig:
    # ctx.env is what the runtime gives agents: on Ray, the host's environment.
    _SEEN_ENV.clear()
    _SEEN_ENV.update(ctx.env)
    return AgentConfig(model="fake/echo")


@define_workflow(agent=define_agent(_agent))
async def versioned(ctx: ActionContext[None]) -> dict[str, object]:
    session = await ctx.harness.session()
    response = await session.prompt("which model answers?")
    return {
        "version": VERSION,
        "model": f"{response.model.provider}/{response.model.id}",
        "pid": os.getpid(),
        "node_probe": _SEEN_ENV.get("NODE_ENV_PROBE"),
        "process_probe": os.environ.get("NODE_ENV_PROBE"),
        "env": dict(_SEEN_ENV),
    }
