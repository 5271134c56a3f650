"""summarize: ask the model to summarize a text, return ``{summary}``.

Run it without an API key:

    FLUE_MODEL=fake/echo flue-actors run summarize --input '{"text":"hello"}'

"""

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class SummarizeInput(BaseModel):
    text: str


class SummarizeOutput(BaseModel):
    summary: str


agent = define_agent(
    model="anthropic/claude-haiku-4-5",
    instructions="Summarize the user's text in one or two sentences. Reply with the summary only.",
)


@define_workflow(agent=agent)
async def summarize(ctx: ActionContext[SummarizeInput]) -> SummarizeOutput:
    session = await ctx.harness.session()
    response = await session.prompt(ctx.input.text)
    return SummarizeOutput(summary=response.text)


async def route() -> None:
    """HTTP exposure of POST /workflows/summarize: every request is allowed."""


async def runs() -> None:
    """HTTP exposure of /runs/<runId> for summarize runs: every request is allowed."""
