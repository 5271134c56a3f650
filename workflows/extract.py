"""extract: pull a contact's details out of free text as a structured result.

The agent answers by calling ``finish`` with a value matching :class:`Contact` (or ``give_up``
when the text names nobody), so the workflow returns validated data, not prose to parse.

    FLUE_MODEL=anthropic/claude-haiku-4-5 flue-actors run extract \\
        --input '{"text":"Mail Ada Lovelace (ada@example.com) at Analytical Engines Ltd."}'

"""

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class ExtractInput(BaseModel):
    text: str


class Contact(BaseModel):
    name: str
    email: str | None = None
    company: str | None = None


agent = define_agent(
    model="anthropic/claude-haiku-4-5",
    instructions=(
        "Extract the contact the user's text is about: their name, and their email address and "
        "company if the text gives them. Never invent a value the text does not contain."
    ),
)


@define_workflow(agent=agent)
async def extract(ctx: ActionContext[ExtractInput]) -> Contact:
    session = await ctx.harness.session()
    response = await session.prompt(ctx.input.text, result=Contact)
    return response.data


async def route() -> None:
    """HTTP exposure of POST /workflows/extract: every request is allowed."""


async def runs() -> None:
    """HTTP exposure of /runs/<runId> for extract runs: every request is allowed."""
