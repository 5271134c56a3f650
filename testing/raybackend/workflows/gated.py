"""Waits until a file exists, then says where it ran (a run a test ends when it chooses)."""

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class GatedInput(BaseModel):
    gate: str


@define_workflow(agent=define_agent(model="fake/echo"))
async def gated(ctx: ActionContext[GatedInput]) -> dict[str, object]:
    gate = Path(ctx.input.gate)
    # The file system is the one channel this host process shares with the test: poll it.
    while not gate.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.05)
    return {"pid": os.getpid()}
