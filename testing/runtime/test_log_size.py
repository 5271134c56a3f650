"""The log grows linearly with a conversation: each message is stored with the events Flue defines
for it, never the whole conversation per turn (requests are rebuilt on replay, not recorded).

The README quotes the figure this measures: a 100-turn agent loop over a 50,000-token
transcript (each turn's tool result about 500 tokens, 2,000 characters)."""

from __future__ import annotations

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_tool, define_workflow
from flue_actors.models import ModelRequest
from flue_actors.store import run_stream
from flue_actors.testing import FakeToolCall, FakeTurn, FlueTestKit

CHARS_PER_TURN = 2_000  # about 500 tokens at 4 characters a token


class Page(BaseModel):
    number: int


async def read_page(args: Page) -> str:
    return (f"page {args.number}: " + "lorem ipsum dolor sit amet " * 80)[:CHARS_PER_TURN]


agent = define_agent(
    model="fake/reader",
    instructions="Read every page.",
    tools=[define_tool(name="read_page", description="A page.", input=Page, run=read_page)],
)


class Pages(BaseModel):
    turns: int


@define_workflow(agent=agent)
async def reader(ctx: ActionContext[Pages]) -> str:
    session = await ctx.harness.session()
    return (await session.prompt(f"Read {ctx.input.turns - 1} pages.")).text


def log_bytes(flue: FlueTestKit, turns: int) -> int:
    def respond(request: ModelRequest) -> FakeTurn:
        done = sum(1 for message in request.messages if message["role"] == "toolResult")
        if done < turns - 1:
            call = FakeToolCall("read_page", {"number": done}, f"call_{done}")
            return FakeTurn(text=f"Reading page {done}.", tool_calls=[call])
        return FakeTurn(text="Done reading.")

    flue.fake_model.respond_with(respond)
    run = flue.run(reader, {"turns": turns})
    assert run.status == "completed", run.error
    assert len(run.events_of("turn")) == turns

    async def size() -> int:
        page = await flue.runtime.store.read(run_stream(run.run_id), limit=1000)
        total, offset = 0, "-1"
        while True:
            page = await flue.runtime.store.read(run_stream(run.run_id), offset=offset, limit=1000)
            total += sum(len(event.raw.encode()) for event in page.events)
            offset = page.next_offset
            if page.up_to_date or not page.events:
                return total

    return flue.drive(size())


def test_the_log_of_an_agent_loop_grows_linearly_with_its_turns(flue: FlueTestKit) -> None:
    half, full = log_bytes(flue, 50), log_bytes(flue, 100)
    transcript = 99 * CHARS_PER_TURN  # the tool results alone: ~50,000 tokens

    # Twice the turns, twice the bytes (a conversation stored per turn would be four times).
    assert 1.8 < full / half < 2.2, (half, full)
    # Each tool result is in the three events Flue defines for it (tool, turn_messages,
    # agent_end), each with its envelope; replay records nothing beside them.
    assert full < 6 * transcript, (full, transcript)
    print(f"log bytes: 50 turns {half:,}, 100 turns {full:,}; transcript {transcript:,} chars")
