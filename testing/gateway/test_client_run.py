"""``client.workflows.run(name, input=...)``: invoke, follow the run's events until its
``run_end``, and return its result or raise ``FlueExecutionError`` (reference 1.8 and 1.16,
``@flue/sdk``'s ``workflows.run``), in the async and the sync client, over a real uvicorn server
with long-poll and SSE; and how a failed structured result reaches HTTP callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel

from flue_actors import ActionContext, Runtime, define_agent, define_workflow
from flue_actors._runtime import DiscoveredWorkflow
from flue_actors.client import (
    AsyncFlueClient,
    FlueApiError,
    FlueClient,
    FlueExecutionError,
    WorkflowRun,
)
from flue_actors.client._protocol import RunSettlement

from .conftest import AppFactory, LiveServer, allow, asgi_client, assert_error

LIVE_MODES: list[Any] = [True, "sse"]


@pytest_asyncio.fixture
async def remote(live_server: LiveServer) -> AsyncIterator[AsyncFlueClient]:
    async with AsyncFlueClient(live_server.base_url, timeout=10) as opened:
        yield opened


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


@pytest.mark.parametrize("live", LIVE_MODES)
async def test_run_returns_the_result_after_showing_every_event(
    remote: AsyncFlueClient, runtime: Runtime, live: Any
) -> None:
    seen: list[dict[str, Any]] = []
    run = await remote.workflows.run("logger", input={"count": 3}, on_event=seen.append, live=live)
    assert isinstance(run, WorkflowRun)
    assert run.result == 3
    assert _types(seen) == ["run_start", "log", "log", "log", "run_end"]
    assert {event["runId"] for event in seen} == {run.run_id}
    assert seen == await runtime.events(run.run_id)


async def test_run_awaits_an_async_on_event(remote: AsyncFlueClient) -> None:
    seen: list[str] = []

    async def show(event: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(event["type"])

    run = await remote.workflows.run("echo", input={"text": "hi"}, on_event=show)
    assert run.result == {"text": "hi"}
    assert seen == ["run_start", "run_end"]


async def test_run_of_a_workflow_without_result_returns_none(remote: AsyncFlueClient) -> None:
    assert (await remote.workflows.run("none")).result is None


@pytest.mark.parametrize("live", LIVE_MODES)
async def test_a_failed_run_raises_flue_execution_error(
    remote: AsyncFlueClient, runtime: Runtime, live: Any
) -> None:
    with pytest.raises(FlueExecutionError) as raised:
        await remote.workflows.run("failing", live=live)
    error = raised.value
    assert (error.target, error.failure) == ("workflow_run", "failed")
    assert error.error == {"name": "RuntimeError", "message": "boom"}
    assert str(error) == f"Workflow run {error.target_id} failed: boom"
    record = await runtime.get_run(error.target_id)
    assert record is not None
    assert record.status == "errored"


async def test_a_typed_failure_keeps_its_type(remote: AsyncFlueClient) -> None:
    with pytest.raises(FlueExecutionError) as raised:
        await remote.workflows.run("typed_fail")
    assert raised.value.error["type"] == "operation_failed"


async def test_a_cancelled_run_raises_an_aborted_execution_error(
    remote: AsyncFlueClient, runtime: Runtime
) -> None:
    cancelling: list[asyncio.Task[bool]] = []

    def cancel_once_waiting(event: dict[str, Any]) -> None:
        if event.get("message") == "waiting":
            cancelling.append(asyncio.ensure_future(runtime.cancel(event["runId"])))

    with pytest.raises(FlueExecutionError) as raised:
        await remote.workflows.run("blocking", on_event=cancel_once_waiting)
    assert raised.value.failure == "aborted"
    assert raised.value.error["type"] == "run_cancelled"
    assert str(raised.value).startswith(f"Workflow run {raised.value.target_id} was aborted: ")
    assert [await task for task in cancelling] == [True]


async def test_a_refused_invocation_raises_the_api_error_and_starts_nothing(
    remote: AsyncFlueClient, runtime: Runtime
) -> None:
    with pytest.raises(FlueApiError) as raised:
        await remote.workflows.run("echo", input={"text": 5})
    assert (raised.value.status, raised.value.type) == (422, "action_input_validation")
    with pytest.raises(FlueApiError) as missing:
        await remote.workflows.run("no_such_workflow")
    assert (missing.value.status, missing.value.type) == (404, "workflow_not_found")
    assert (await runtime.list_runs()).runs == []


@pytest.mark.parametrize("live", LIVE_MODES)
async def test_the_sync_client_runs_a_workflow(live_server: LiveServer, live: Any) -> None:
    def run_both() -> tuple[WorkflowRun, list[str], FlueExecutionError]:
        seen: list[str] = []
        with FlueClient(live_server.base_url, timeout=10) as client:
            run = client.workflows.run(
                "logger", {"count": 2}, on_event=lambda e: seen.append(e["type"]), live=live
            )
            try:
                client.workflows.run("failing", live=live)
            except FlueExecutionError as error:
                return run, seen, error
        raise AssertionError("the failing run did not raise")

    run, seen, failure = await asyncio.to_thread(run_both)
    assert run.result == 2
    assert seen == ["run_start", "log", "log", "run_end"]
    assert failure.failure == "failed"
    assert failure.error["message"] == "boom"


# --- settling a run whose stream closed without its run_end ----------------------------------


def test_a_stream_without_run_end_settles_from_the_record() -> None:
    settlement = RunSettlement("run_A")
    assert not settlement.observe({"type": "log", "runId": "run_A"})
    assert not settlement.observe({"type": "run_end", "runId": "run_B", "isError": True})
    assert settlement.from_record({"status": "completed", "result": [1]}) == WorkflowRun(
        "run_A", [1]
    )
    with pytest.raises(FlueExecutionError) as failed:
        settlement.from_record({"status": "errored", "error": {"name": "E", "message": "m"}})
    assert (failed.value.failure, failed.value.error) == ("failed", {"name": "E", "message": "m"})
    with pytest.raises(FlueExecutionError) as missing:
        settlement.from_record({"status": "active"})
    assert missing.value.failure == "terminal_event_missing"
    assert str(missing.value) == "Workflow run run_A ended without a terminal event"


# --- a structured result that fails, as HTTP callers see it ----------------------------------


class Verdict(BaseModel):
    ok: bool


async def test_a_failed_structured_result_reaches_callers_as_flue_does(
    make_app: AppFactory, runtime: Runtime
) -> None:
    """Flue answers a ``wait=result`` run that failed with an untyped error (the agent gave no
    structured result: ``ResultUnavailableError``, not a ``FlueError``) with the generic
    ``internal_error`` and nothing from the error itself; here too (plus ``meta.runId``), and
    the run's ``run_end`` and record name the error for callers that read the run, such as
    ``workflows.run``."""

    async def judge(ctx: ActionContext[None]) -> dict[str, bool]:
        session = await ctx.harness.session()
        verdict = await session.prompt("judge", result=Verdict)
        return {"ok": verdict.data.ok}

    definition = define_workflow(agent=define_agent(model="fake/echo"), run=judge)
    runtime.workflows.register(DiscoveredWorkflow("judge", definition, route=allow, runs=allow))
    async with asgi_client(make_app()) as client:
        response = await client.post("/workflows/judge", params={"wait": "result"})
    error = assert_error(response, 500, "internal_error")
    run_id = error["meta"]["runId"]
    record = await runtime.get_run(run_id)
    assert record is not None
    assert record.error is not None
    assert record.error["name"] == "ResultUnavailableError"
