"""``observe()`` and ``instrument()`` (reference 1.19): process-wide observers see every event of
every run as it is emitted, plus live-only detail (``turn_request``, a tool call's ``args``)
that never reaches the log; interceptors wrap runs, operations, model turns, tools and tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    define_agent,
    define_agent_profile,
    define_tool,
    define_workflow,
)
from flue_actors._observation import (
    AgentExecution,
    EventContext,
    ExecutionContext,
    ExecutionOperation,
    Instrumentation,
    InstrumentationAlreadyInstalledError,
    ModelExecution,
    TaskExecution,
    ToolExecution,
    WorkflowExecution,
    instrument,
    observe,
)
from flue_actors.testing import FakeModel, FlueTestKit


class Numbers(BaseModel):
    a: int
    b: int


async def _add(args: Numbers) -> int:
    return args.a + args.b


ADD = define_tool(name="add", description="Add two numbers.", input=Numbers, run=_add)
AGENT = define_agent(
    model="fake/echo",
    instructions="Be brief.",
    tools=[ADD],
    subagents=[define_agent_profile(name="helper", instructions="Help.")],
)


@define_workflow(agent=AGENT)
async def adding(ctx: ActionContext[None]) -> str:
    session = await ctx.harness.session()
    answer = await session.prompt("add 2 and 3")
    await session.task("check it", agent="helper")
    return answer.text


@pytest.fixture
def observed() -> Iterator[list[tuple[dict[str, Any], EventContext]]]:
    seen: list[tuple[dict[str, Any], EventContext]] = []
    unsubscribe = observe(lambda observation, ctx: seen.append((observation, ctx)))
    try:
        yield seen
    finally:
        unsubscribe()


def _script(fake_model: FakeModel) -> None:
    fake_model.reply("", tool_calls=[("add", {"a": 2, "b": 3})]).reply("5").reply("checked")


def test_an_observer_sees_every_stored_event_in_order_with_live_only_detail(
    flue: FlueTestKit, fake_model: FakeModel, observed: list[tuple[dict[str, Any], EventContext]]
) -> None:
    _script(fake_model)
    run = flue.run(adding)
    assert run.status == "completed"
    stored = [event for event, _ in observed if event["type"] != "turn_request"]
    assert [e["eventIndex"] for e in stored] == list(range(len(run.events)))
    # The stored events, as stored: the live-only detail is the only difference.
    assert [{k: v for k, v in e.items() if k != "args"} for e in stored] == run.events
    contexts = [ctx for _, ctx in observed]
    assert contexts == [EventContext(run.run_id, run.record.workflow_name, {})] * len(observed)
    [tool_start] = [e for e in stored if e["type"] == "tool_start" and e["toolName"] == "add"]
    assert tool_start["args"] == {"a": 2, "b": 3}
    assert all("args" not in event for event in run.events)


def test_turn_request_shows_the_model_input_and_is_never_stored(
    flue: FlueTestKit, fake_model: FakeModel, observed: list[tuple[dict[str, Any], EventContext]]
) -> None:
    _script(fake_model)
    run = flue.run(adding)
    types = [event["type"] for event, _ in observed]
    requests = [event for event, _ in observed if event["type"] == "turn_request"]
    assert len(requests) == 3 == types.count("turn")
    assert "turn_request" not in run.event_types
    first = requests[0]
    assert "eventIndex" not in first
    assert first["runId"] == run.run_id
    assert first["purpose"] == "agent"
    assert first["request"]["requestedModel"] == fake_model.requests[0].model
    assert first["request"]["input"]["systemPrompt"] == "Be brief."
    assert first["request"]["input"]["messages"][-1]["content"][0]["text"] == "add 2 and 3"
    assert "add" in [tool["name"] for tool in first["request"]["input"]["tools"]]
    # Announced between the turn's start and its end, carrying the turn's id.
    turn_id = first["turnId"]
    start = next(i for i, (e, _) in enumerate(observed) if e.get("turnId") == turn_id)
    at = types.index("turn_request")
    end = next(i for i, (e, _) in enumerate(observed) if e["type"] == "turn")
    assert start < at < end


def test_a_failing_subscriber_is_logged_and_changes_nothing(
    flue: FlueTestKit,
    fake_model: FakeModel,
    observed: list[tuple[dict[str, Any], EventContext]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(observation: dict[str, Any], ctx: EventContext) -> None:
        observation["type"] = "tampered"  # a copy of its own: nobody else sees this
        raise RuntimeError("subscriber bug")

    async def broken_later(observation: dict[str, Any], ctx: EventContext) -> None:
        raise ValueError("async subscriber bug")

    unsubscribe = [observe(broken), observe(broken_later)]
    try:
        _script(fake_model)
        with caplog.at_level(logging.ERROR, logger="flue_actors.observe"):
            run = flue.run(adding)
    finally:
        for stop in unsubscribe:
            stop()
    assert run.status == "completed"
    assert "tampered" not in run.event_types
    failures = [r.getMessage() for r in caplog.records if "subscriber failed" in r.getMessage()]
    assert any("subscriber bug" in message for message in failures)
    assert any("async subscriber bug" in message for message in failures)
    # The other subscriber saw everything regardless, untampered.
    assert [e["type"] for e, _ in observed if e["type"] != "turn_request"] == run.event_types


def test_unsubscribing_stops_delivery(flue: FlueTestKit, fake_model: FakeModel) -> None:
    seen: list[str] = []
    stop = observe(lambda observation, ctx: seen.append(observation["type"]))
    stop()
    stop()  # a second call does nothing
    _script(fake_model)
    flue.run(adding)
    assert seen == []


def test_interceptors_wrap_every_kind_of_execution_outermost_first(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    calls: list[tuple[str, str]] = []

    def recorder(
        label: str,
    ) -> Callable[[ExecutionOperation, ExecutionContext, Callable[[], Awaitable[Any]]], Any]:
        async def intercept(
            operation: ExecutionOperation,
            ctx: ExecutionContext,
            proceed: Callable[[], Awaitable[Any]],
        ) -> Any:
            calls.append((label, f"enter {operation.type}"))
            try:
                return await proceed()
            finally:
                calls.append((label, f"leave {operation.type}"))

        return intercept

    operations: list[tuple[ExecutionOperation, ExecutionContext]] = []

    async def capture(
        operation: ExecutionOperation, ctx: ExecutionContext, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        operations.append((operation, ctx))
        return await proceed()

    disposers = [
        instrument(Instrumentation(observe=lambda o, c: None, interceptor=recorder("outer"))),
        instrument(Instrumentation(observe=lambda o, c: None, interceptor=recorder("inner"))),
        instrument(Instrumentation(observe=lambda o, c: None, interceptor=capture)),
    ]
    try:
        _script(fake_model)
        run = flue.run(adding)
    finally:
        for dispose in disposers:
            dispose()
    assert run.status == "completed"
    assert calls[:4] == [
        ("outer", "enter workflow"),
        ("inner", "enter workflow"),
        ("outer", "enter agent"),
        ("inner", "enter agent"),
    ]
    assert calls[-2:] == [("inner", "leave workflow"), ("outer", "leave workflow")]
    kinds = [operation.type for operation, _ in operations]
    assert kinds == [
        "workflow",
        "agent",  # the prompt
        "model",
        "tool",
        "model",
        "agent",  # the task operation
        "task",
        "model",
    ]
    workflow, context = operations[0]
    name = run.record.workflow_name
    assert workflow == WorkflowExecution(
        run.run_id, name, "start", started_at=run.events[0]["startedAt"]
    )
    assert context == ExecutionContext(run.run_id, name)
    prompt_start = run.events[1]
    assert operations[1][0] == AgentExecution(prompt_start["operationId"], "prompt")
    assert operations[1][1].operation_id == prompt_start["operationId"]
    assert operations[1][1].session == prompt_start["session"]
    model, model_context = operations[2]
    assert isinstance(model, ModelExecution)
    assert model_context.turn_id == model.turn_id
    assert model.model == fake_model.requests[0].model
    tool, _ = operations[3]
    assert isinstance(tool, ToolExecution)
    assert tool.tool_name == "add"
    task, task_context = operations[6]
    assert isinstance(task, TaskExecution)
    assert task.agent == "helper"
    assert task_context.task_id == task.task_id


def test_an_interceptor_sees_results_and_failures(flue: FlueTestKit, fake_model: FakeModel) -> None:
    results: list[Any] = []

    async def capture(
        operation: ExecutionOperation, ctx: ExecutionContext, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        try:
            value = await proceed()
        except Exception as error:
            results.append((operation.type, type(error).__name__))
            raise
        if operation.type == "tool":
            results.append((operation.type, value))
        return value

    dispose = instrument(Instrumentation(observe=lambda o, c: None, interceptor=capture))
    try:
        fake_model.reply("", tool_calls=[("add", {"a": 2, "b": 3})]).fail(status=400)
        run = flue.run(adding)
    finally:
        dispose()
    assert run.status == "errored"
    assert ("tool", 5) in results
    assert ("model", "ModelRequestError") in results
    assert results[-1] == ("workflow", "OperationFailedError")


def test_next_may_be_called_only_once(flue: FlueTestKit, fake_model: FakeModel) -> None:
    async def twice(
        operation: ExecutionOperation, ctx: ExecutionContext, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        if operation.type == "workflow":
            await proceed()
            return await proceed()
        return await proceed()

    dispose = instrument(Instrumentation(observe=lambda o, c: None, interceptor=twice))
    try:
        _script(fake_model)
        run = flue.run(adding)
    finally:
        dispose()
    assert run.status == "errored"
    assert run.error is not None
    assert run.error["message"] == "Flue execution next() called more than once."


def test_instrument_is_idempotent_keyed_and_disposes_once() -> None:
    disposed: list[str] = []

    async def passthrough(
        operation: ExecutionOperation, ctx: ExecutionContext, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        return await proceed()

    first = Instrumentation(
        observe=lambda o, c: None,
        interceptor=passthrough,
        dispose=lambda: disposed.append("first"),
        key="tracing",
    )
    dispose = instrument(first)
    assert instrument(first) is dispose
    rival = Instrumentation(observe=lambda o, c: None, interceptor=passthrough, key="tracing")
    with pytest.raises(InstrumentationAlreadyInstalledError) as refused:
        instrument(rival)
    assert refused.value.type == "instrumentation_already_installed"
    dispose()
    dispose()
    assert disposed == ["first"]
    instrument(rival)()  # the key is free again


async def test_observers_run_in_async_tests_too(flue: FlueTestKit, fake_model: FakeModel) -> None:
    seen: list[str] = []

    async def later(observation: dict[str, Any], ctx: EventContext) -> None:
        await asyncio.sleep(0)
        seen.append(observation["type"])

    stop = observe(later)
    try:
        _script(fake_model)
        run = await flue.run_async(adding)
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        stop()
    assert seen[-1] == "run_end"
    assert [t for t in seen if t != "turn_request"] == run.event_types
