"""Ambient invocation (reference 1.6): workflow code invokes other workflows with
``ctx.invoke(...)`` (or ``flue_actors.invoke``), recorded in the invoking run's log, and
application code running beside a runtime (a route of the server's app) invokes with
``invoke(...)`` alone; with no runtime to find, ``workflow_invocation_not_configured``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import BaseModel

from flue_actors import (
    ActionContext,
    ModelRegistry,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_workflow,
    invoke,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors._runtime import DiscoveredWorkflow, WorkflowRegistry
from flue_actors._runtime.ambient import INVOKED_MESSAGE
from flue_actors.errors import WorkflowInputUnexpectedError, WorkflowInvocationNotConfiguredError
from flue_actors.gateway import create_app

AGENT = define_agent(model="fake/echo")


class Text(BaseModel):
    text: str


@define_workflow(agent=AGENT)
async def shout(ctx: ActionContext[Text]) -> str:
    return ctx.input.text.upper()


@define_workflow(agent=AGENT)
async def fire_and_forget(ctx: ActionContext[Text]) -> str:
    receipt = await ctx.invoke(shout, {"text": ctx.input.text})
    return receipt.run_id


@define_workflow(agent=AGENT)
async def delegate(ctx: ActionContext[Text]) -> Any:
    record = await ctx.invoke("shout", {"text": ctx.input.text}, wait=True)
    return {"child": record.run_id, "status": record.status, "result": record.result}


@define_workflow(agent=AGENT)
async def ambient_inside(ctx: ActionContext[None]) -> str:
    return (await invoke(shout, {"text": "inside"})).run_id


@define_workflow(agent=AGENT)
async def wrong_input(ctx: ActionContext[None]) -> str:
    return (await ctx.invoke(ambient_inside, {"unexpected": True})).run_id


def _registry() -> WorkflowRegistry:
    workflows = {
        "shout": shout,
        "fire_and_forget": fire_and_forget,
        "delegate": delegate,
        "ambient_inside": ambient_inside,
        "wrong_input": wrong_input,
    }
    return WorkflowRegistry.from_definitions(
        {
            name: DiscoveredWorkflow(name, definition, route=_allow, runs=_allow)
            for name, definition in workflows.items()
        }
    )


async def _allow() -> None:
    return None


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[Runtime]:
    opened = Runtime(
        _registry(),
        store=SqliteEventStore(":memory:"),
        models=ModelRegistry(override="fake/echo"),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    try:
        yield opened
    finally:
        await opened.close()


def _invocations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        event["attributes"]
        for event in events
        if event["type"] == "log" and event["message"] == INVOKED_MESSAGE
    ]


async def test_ctx_invoke_admits_the_run_and_the_parent_records_it(runtime: Runtime) -> None:
    parent = await runtime.run("fire_and_forget", {"text": "hi"})
    assert parent.status == "completed"
    child_id = parent.result
    assert isinstance(child_id, str)
    child = await runtime.wait(child_id, timeout=5)
    assert (child.workflow_name, child.status, child.result) == ("shout", "completed", "HI")
    events = await runtime.events(parent.run_id)
    assert _invocations(events) == [{"runId": child_id, "workflowName": "shout"}]
    [logged] = [e for e in events if e["type"] == "log"]
    assert logged["level"] == "info"
    assert "operationId" not in logged  # a run-level event, like ctx.log's


async def test_ctx_invoke_with_wait_returns_the_childs_terminal_record(runtime: Runtime) -> None:
    parent = await runtime.run("delegate", {"text": "abc"})
    assert parent.status == "completed"
    assert isinstance(parent.result, dict)
    assert parent.result["status"] == "completed"
    assert parent.result["result"] == "ABC"
    recorded = _invocations(await runtime.events(parent.run_id))
    assert recorded == [{"runId": parent.result["child"], "workflowName": "shout"}]


async def test_ambient_invoke_inside_a_run_is_recorded_too(runtime: Runtime) -> None:
    parent = await runtime.run("ambient_inside")
    assert parent.status == "completed"
    recorded = _invocations(await runtime.events(parent.run_id))
    assert recorded == [{"runId": parent.result, "workflowName": "shout"}]


async def test_a_refused_invocation_fails_the_invoking_run_with_its_type(
    runtime: Runtime,
) -> None:
    parent = await runtime.run("wrong_input")
    assert parent.status == "errored"
    assert parent.error is not None
    assert parent.error["type"] == WorkflowInputUnexpectedError.type
    assert _invocations(await runtime.events(parent.run_id)) == []
    assert [run.workflow_name for run in (await runtime.list_runs()).runs] == ["wrong_input"]


async def test_application_code_in_the_server_invokes_without_a_runtime_handle(
    runtime: Runtime,
) -> None:
    app = create_app(runtime)

    @app.post("/shout-twice")
    async def shout_twice() -> dict[str, list[str]]:
        first = await invoke("shout", {"text": "a"})
        second = await invoke(shout, {"text": "b"})
        return {"runs": [first.run_id, second.run_id]}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.post("/shout-twice")
    assert response.status_code == 200, response.text
    runs = response.json()["runs"]
    results = [(await runtime.wait(run_id, timeout=5)).result for run_id in runs]
    assert results == ["A", "B"]


async def test_without_an_open_runtime_invoke_is_not_configured(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flue_actors._runtime import ambient

    assert runtime in [ref() for ref in ambient._serving]
    await runtime.close()
    assert runtime not in [ref() for ref in ambient._serving]
    # Other tests' runtimes may still be open in this process: none is, for this call.
    monkeypatch.setattr(ambient, "_serving", [])
    with pytest.raises(WorkflowInvocationNotConfiguredError) as refused:
        await invoke("shout", {"text": "x"})
    assert refused.value.type == "workflow_invocation_not_configured"
    assert refused.value.message == "Workflow invocation is not configured in this runtime."
