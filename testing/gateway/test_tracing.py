"""OpenTelemetry spans (the ``otel`` extra): a run invoked over HTTP with a ``traceparent`` is
a child span of the caller's, and its operations, model turns and tools are spans inside it,
exported here with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    ModelRegistry,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_tool,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors._runtime import DiscoveredWorkflow, WorkflowRegistry
from flue_actors.client import AsyncFlueClient
from flue_actors.gateway import create_app
from flue_actors.otel import INSTRUMENTATION_KEY, install_opentelemetry
from flue_actors.testing import FakeModel

from .conftest import allow

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class Numbers(BaseModel):
    a: int
    b: int


async def _add(args: Numbers) -> int:
    return args.a + args.b


ADD = define_tool(name="add", description="Add two numbers.", input=Numbers, run=_add)


async def adding(ctx: ActionContext[None]) -> str:
    ctx.log.info("adding")
    session = await ctx.harness.session()
    return (await session.prompt("add 2 and 3")).text


async def failing(ctx: ActionContext[None]) -> None:
    raise RuntimeError("boom")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    uninstall = install_opentelemetry(tracer_provider=provider)
    assert install_opentelemetry() is uninstall  # once per process
    try:
        yield exported
    finally:
        uninstall()
        provider.shutdown()


@pytest_asyncio.fixture
async def served(exporter: InMemorySpanExporter) -> AsyncIterator[tuple[str, FakeModel]]:
    fake = FakeModel()
    agent = define_agent(model="fake/model", tools=[ADD])
    registry = WorkflowRegistry.from_definitions(
        {
            name: DiscoveredWorkflow(name, define_workflow(agent=agent, run=run), allow, allow)
            for name, run in [("adding", adding), ("failing", failing)]
        }
    )
    runtime = Runtime(
        registry,
        store=SqliteEventStore(":memory:"),
        models=ModelRegistry(override=fake),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", fake
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        await runtime.close()


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [span for span in spans if span.name == name]
    return span


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_run_over_http_is_a_span_under_the_callers_traceparent(
    served: tuple[str, FakeModel], exporter: InMemorySpanExporter
) -> None:
    url, fake = served
    fake.reply("", tool_calls=[("add", {"a": 2, "b": 3})]).reply("5")
    async with AsyncFlueClient(url, headers={"traceparent": TRACEPARENT}) as client:
        run = await client.workflows.run("adding")
    assert run.result == "5"
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == [
        "chat model",
        "chat model",
        "execute_tool add",
        "invoke_agent",
        "invoke_workflow adding",
    ]
    assert {format(span.context.trace_id, "032x") for span in spans} == {TRACE_ID}
    workflow = _by_name(spans, "invoke_workflow adding")
    assert _parent_of(workflow) == int(PARENT_SPAN, 16)
    assert workflow.parent is not None
    assert workflow.parent.is_remote
    assert workflow.attributes is not None
    assert workflow.attributes["flue.run.id"] == run.run_id
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert [event.name for event in workflow.events] == ["flue.log"]
    agent = _by_name(spans, "invoke_agent")
    assert _parent_of(agent) == workflow.context.span_id
    chats = [span for span in spans if span.name == "chat model"]
    tool = _by_name(spans, "execute_tool add")
    assert {_parent_of(span) for span in [*chats, tool]} == {agent.context.span_id}
    assert chats[0].kind == SpanKind.CLIENT
    assert chats[0].attributes is not None
    assert chats[0].attributes["gen_ai.request.model"] == "model"
    assert chats[0].attributes["gen_ai.provider.name"] == "fake"
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ("toolUse",)
    assert "gen_ai.usage.output_tokens" in chats[0].attributes
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "add"
    # Content is never exported: no attribute holds the prompt or the tool's arguments.
    values = [str(v) for span in spans for v in (span.attributes or {}).values()]
    assert not any("add 2 and 3" in value for value in values)


async def test_without_traceparent_a_run_is_a_root_and_a_failure_is_an_error_span(
    served: tuple[str, FakeModel], exporter: InMemorySpanExporter
) -> None:
    url, _ = served
    async with AsyncFlueClient(url) as client:
        invocation = await client.workflows.invoke("failing", wait=None)
        async for _event in client.runs.stream(invocation.run_id):
            pass
    workflow = _by_name(exporter.get_finished_spans(), "invoke_workflow failing")
    assert workflow.parent is None
    assert workflow.status.status_code == StatusCode.ERROR
    assert [event.name for event in workflow.events] == ["exception"]


def test_the_instrumentation_is_one_per_process() -> None:
    from flue_actors._observation import InstrumentationAlreadyInstalledError, instrument
    from flue_actors.otel import opentelemetry_instrumentation

    uninstall = install_opentelemetry()
    try:
        with pytest.raises(InstrumentationAlreadyInstalledError):
            instrument(opentelemetry_instrumentation())
        assert opentelemetry_instrumentation().key == INSTRUMENTATION_KEY
    finally:
        uninstall()
    instrument(opentelemetry_instrumentation())()
