"""review: stage a document in the sandbox, let the model review it with the workspace tools
and write ``review.md``, return ``{review}``.

Run it without an API key (the fake model only echoes, so no review.md gets written):

    FLUE_MODEL=fake/echo flue-actors run review --input '{"document":"# Draft"}'
"""

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class ReviewInput(BaseModel):
    document: str
    name: str = "document.md"


class ReviewOutput(BaseModel):
    review: str


agent = define_agent(
    model="anthropic/claude-haiku-4-5",
    instructions=(
        "You review documents. Read the file you are given with the read tool, then write "
        "your review to review.md with the write tool (use edit to refine it). Be concrete."
    ),
)


@define_workflow(agent=agent)
async def review(ctx: ActionContext[ReviewInput]) -> ReviewOutput:
    fs = ctx.harness.fs
    await fs.write_file(ctx.input.name, ctx.input.document)
    session = await ctx.harness.session()
    await session.prompt(f"Review {ctx.input.name} and write your review to review.md.")
    # The review is what the model left in the file, not its closing chat message.
    text = await fs.read_file("review.md") if await fs.exists("review.md") else ""
    return ReviewOutput(review=text)


async def route() -> None:
    """HTTP exposure of POST /workflows/review: every request is allowed."""


async def runs() -> None:
    """HTTP exposure of /runs/<runId> for review runs: every request is allowed."""
