"""A prompt whose agent has an MCP server's tools, for the Ray backend: the run's host starts
the stdio server (the tests' notes server), lists its tools and stops it at the run's end."""

import sys
from pathlib import Path

import flue_actors
from flue_actors import ActionContext, define_agent, define_workflow, mcp_tools

# The repository this (editable) install runs from; the workflow file itself is copied.
SERVER = Path(flue_actors.__file__).resolve().parents[1] / "testing/mcp_tools/notes_server.py"
notes = mcp_tools(name="notes", command=sys.executable, args=[str(SERVER)])


@define_workflow(agent=define_agent(model="fake/echo", tools=[notes]))
async def mcp_notes(ctx: ActionContext[None]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt("hello over mcp")).text
