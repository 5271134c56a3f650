"""Arbitrary text through every way into a run, read back over HTTP (issue 9, "any bytes in, no
damage"), on SQLite and on PostgreSQL.

Hypothesis draws strings of any code points (lone surrogates, NUL, controls, U+2028, private use,
astral) and sends them as workflow input (over HTTP as JSON ``\\ud800`` escapes, and through the
Python API), as the model's reply and thinking (the fake model), as a tool's arguments and result,
and as ``ctx.log`` messages and attributes; the workflow also runs shell commands that print
invalid UTF-8 and NUL, and ``cat``s the text from a file (the sandbox's files hold bytes, so a lone
surrogate is refused there with ``UnicodeEncodeError``, which the workflow logs). Each run must
end ``completed``, and every event must read back over HTTP (catch-up pages, and the run record
with ``?meta``) with a gap-free ``eventIndex`` and the same text.

A high surrogate followed by a low one reads back as the character they encode (JSON and
JavaScript strings cannot tell the two apart), so expectations go through :func:`as_utf16`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from store.conftest import POSTGRES_URL, drop_scratch_schemas, scratch_schema
from store.test_any_text import AWKWARD, as_utf16

from flue_actors import (
    ActionContext,
    ModelRegistry,
    Runtime,
    define_agent,
    define_tool,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors._runtime import DiscoveredWorkflow, WorkflowRegistry
from flue_actors.errors import FlueError
from flue_actors.gateway import create_app
from flue_actors.models import ModelRequest
from flue_actors.store import EventStore, PostgresEventStore, SqliteEventStore
from flue_actors.testing import FakeModel, FakeToolCall, FakeTurn

from .conftest import allow, asgi_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Any code point, surrogates included (``exclude_categories=()``: Hypothesis leaves out ``Cs``
# by default), mixed with the strings known to break things.
TEXT: Final = st.lists(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(AWKWARD)), max_size=16
).map("".join)


class Texts(BaseModel):
    input: str
    model: str
    tool: str
    log: str


class Shout(BaseModel):
    text: str


@dataclass
class Script:
    """What the fake model answers for the run in progress (runs go one at a time)."""

    texts: Texts = field(default_factory=lambda: Texts(input="", model="", tool="", log=""))

    def answer(self, request: ModelRequest) -> FakeTurn:
        if len(request.messages) == 1:  # the prompt alone: call the tool first
            return FakeTurn(tool_calls=[FakeToolCall("shout", {"text": self.texts.tool}, "c1")])
        return FakeTurn(text=self.texts.model, thinking=self.texts.model)


async def shout(args: Shout) -> str:
    return "shouted:" + args.text


AGENT: Final = define_agent(
    model="fake/any",
    tools=[define_tool(name="shout", description="Shouts the text.", input=Shout, run=shout)],
)


async def through(ctx: ActionContext[Texts]) -> dict[str, str]:
    ctx.log.info(ctx.input.log, text=ctx.input.log)
    # Shell output: invalid UTF-8, a NUL and a surrogate's UTF-8 bytes, then the text itself.
    await ctx.harness.shell("printf '\\377\\000\\355\\240\\200'")
    try:
        await ctx.harness.fs.write_file("text.txt", ctx.input.log)
        await ctx.harness.shell("cat text.txt")
    except UnicodeEncodeError as error:  # a file holds bytes: a lone surrogate has none
        ctx.log.warn("the sandbox refused the text", error=error)
    session = await ctx.harness.session()
    response = await session.prompt(ctx.input.input)
    return {"reply": response.text, "input": ctx.input.input}


class OddError(FlueError):
    """A workflow's own error whose ``meta`` is not JSON data: its ``run_end`` cannot be stored."""

    type = "odd"


async def odd_meta(ctx: ActionContext[None]) -> None:
    ctx.log.info("\ud800 before the failure")
    raise OddError("odd", meta={"when": datetime(2026, 1, 1, tzinfo=UTC)})


WORKFLOWS: list[tuple[str, Callable[[ActionContext[Any]], Awaitable[object]]]] = [
    ("through", through),
    ("odd_meta", odd_meta),
]


@dataclass
class Served:
    runtime: Runtime
    client: httpx.AsyncClient
    script: Script


async def serve(store: EventStore) -> AsyncIterator[Served]:
    script = Script()
    registry = WorkflowRegistry.from_definitions(
        {
            name: DiscoveredWorkflow(
                name, define_workflow(agent=AGENT, run=run), route=allow, runs=allow
            )
            for name, run in WORKFLOWS
        }
    )
    runtime = Runtime(
        registry,
        store=store,
        models=ModelRegistry(override=FakeModel().respond_with(script.answer)),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    try:
        async with asgi_client(create_app(runtime)) as client:
            yield Served(runtime, client, script)
    finally:
        await runtime.close()
        await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def on_sqlite() -> AsyncIterator[Served]:
    async for served in serve(SqliteEventStore(":memory:")):
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def on_postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    schema = scratch_schema(Path(tmp_path_factory.mktemp("any_text")))
    try:
        async for served in serve(PostgresEventStore(POSTGRES_URL, schema=schema, max_size=4)):
            yield served
    finally:
        await drop_scratch_schemas()


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Served:
    """The module's server on the store named by the test's indirect parameter (``on_sqlite``
    or ``on_postgres``), resolved here: an async module fixture cannot be set up from inside
    a running test, which a test run on its own would have to do."""
    found: Served = request.getfixturevalue(request.param)
    return found


async def read_events(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    """Every event of an ended run, page by page over HTTP, until ``Stream-Closed``."""
    events: list[dict[str, Any]] = []
    offset = "-1"
    for _ in range(100):
        response = await client.get(f"/runs/{run_id}", params={"offset": offset})
        assert response.status_code == 200, response.text
        events += response.json()
        offset = response.headers["stream-next-offset"]
        if response.headers.get("stream-closed") == "true":
            return events
    raise AssertionError(f"the stream of {run_id} never read as closed")


async def check_read_back(served: Served, run_id: str, texts: Texts) -> None:
    expected_input = as_utf16(texts.model_dump())
    expected_result = as_utf16({"reply": texts.model, "input": texts.input})
    events = await read_events(served.client, run_id)
    assert [event["eventIndex"] for event in events] == list(range(len(events)))
    types = [event["type"] for event in events]
    assert types[0] == "run_start"
    assert types[-1] == "run_end"
    assert events[0]["input"] == expected_input
    assert events[-1]["isError"] is False, events[-1]
    assert events[-1]["result"] == expected_result
    log = next(event for event in events if event["type"] == "log")
    assert log["message"] == as_utf16(texts.log)
    assert log["attributes"] == {"text": as_utf16(texts.log)}
    tool = next(e for e in events if e["type"] == "tool" and e["toolName"] == "shout")
    assert tool["result"]["content"][0]["text"] == as_utf16("shouted:" + texts.tool)
    deltas = "".join(event["text"] for event in events if event["type"] == "text_delta")
    assert deltas == as_utf16(texts.model)
    thinking = next(event for event in events if event["type"] == "thinking_end")
    assert thinking["content"] == as_utf16(texts.model)

    meta = await served.client.get(f"/runs/{run_id}", params={"meta": ""})
    assert meta.status_code == 200, meta.text
    record = meta.json()
    assert record["status"] == "completed"
    assert record["input"] == expected_input
    assert record["result"] == expected_result


async def check_any_text(served: Served, texts: Texts) -> None:
    served.script.texts = texts
    # Over HTTP as JSON text (lone surrogates as \ud800 escapes: raw, they are not UTF-8).
    body = json.dumps(texts.model_dump()).encode("ascii")
    response = await served.client.post(
        "/workflows/through",
        params={"wait": "result"},
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == as_utf16({"reply": texts.model, "input": texts.input})
    await check_read_back(served, response.json()["runId"], texts)

    # Through the Python API, with the strings exactly as drawn.
    receipt = await served.runtime.invoke("through", texts.model_dump())
    record = await served.runtime.wait(receipt.run_id, timeout=10)
    assert record.status == "completed", record.error
    await check_read_back(served, receipt.run_id, texts)


ANY_TEXT: Final = st.builds(Texts, input=TEXT, model=TEXT, tool=TEXT, log=TEXT)
EXAMPLES: Final = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@settings(EXAMPLES, max_examples=60)
@given(texts=ANY_TEXT)
async def test_any_text_ends_the_run_and_reads_back_on_sqlite(
    on_sqlite: Served, texts: Texts
) -> None:
    await check_any_text(on_sqlite, texts)


@settings(EXAMPLES, max_examples=15)
@given(texts=ANY_TEXT)
async def test_any_text_ends_the_run_and_reads_back_on_postgres(
    on_postgres: Served, texts: Texts
) -> None:
    await check_any_text(on_postgres, texts)


@pytest.mark.parametrize("served", ["on_sqlite", "on_postgres"], indirect=True)
async def test_awkward_text_reads_back_over_sse(served: Served) -> None:
    """The live reader gets the same events as the catch-up reader, byte for byte."""
    awkward = "".join(AWKWARD)
    texts = Texts(input=awkward, model=awkward, tool=awkward, log=awkward)
    await check_any_text(served, texts)
    run_id = (await served.runtime.list_runs(limit=1)).runs[0].run_id
    response = await served.client.get(f"/runs/{run_id}", params={"offset": "-1", "live": "sse"})
    assert response.status_code == 200
    frames = [frame for frame in response.text.split("\n\n") if frame]
    data = [frame for frame in frames if frame.startswith("event: data\n")]
    streamed = [
        event for frame in data for event in json.loads(frame.split("\n", 1)[1][len("data:") :])
    ]
    assert streamed == await read_events(served.client, run_id)
    assert json.loads(frames[-1].split("\n", 1)[1][len("data:") :])["streamClosed"] is True


@pytest.mark.parametrize("served", ["on_sqlite", "on_postgres"], indirect=True)
async def test_a_run_end_that_cannot_be_stored_still_ends_the_run(served: Served) -> None:
    """The workflow's error cannot be encoded (its ``meta`` holds a datetime): the run still
    ends, errored ``event_not_storable``, its stream closed, with no gap in ``eventIndex``."""
    response = await served.client.post("/workflows/odd_meta", params={"wait": "result"})
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["type"] == "event_not_storable", error
    run_id = error["meta"]["runId"]
    events = await read_events(served.client, run_id)
    assert [event["type"] for event in events] == ["run_start", "log", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1, 2]
    assert events[1]["message"] == "\ud800 before the failure"
    assert events[-1]["error"]["meta"] == {"eventType": "run_end", "eventIndex": 2}
    record = (await served.client.get(f"/runs/{run_id}", params={"meta": ""})).json()
    assert record["status"] == "errored"
