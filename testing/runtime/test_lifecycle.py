"""The run lifecycle (reference 1.6, 1.7, 1.11-1.13, 1.22, 1.23), through ``Runtime`` itself.

Runs use an in-memory SQLite log, the step clock and counted ids; workflows that must stay
"in flight" block on an ``asyncio.Event`` the test releases.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    UNSET,
    AbortError,
    ActionContext,
    ActionInputValidationError,
    AgentConfig,
    AgentContext,
    ModelRegistry,
    RunRecord,
    Runtime,
    SqliteEventStore,
    StreamConflictError,
    WorkflowDefinition,
    WorkflowInputSerializationError,
    WorkflowInputUnexpectedError,
    WorkflowNotDiscoveredError,
    WorkflowNotFoundError,
    define_agent,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors.errors import StreamClosedError
from flue_actors.models import ModelRequest
from flue_actors.store import StoredEvent, run_stream
from flue_actors.testing import FakeModel, FlueTestKit

RUN_ID = re.compile(r"^run_[0-9A-HJKMNP-TV-Z]{26}$")
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PROMPT_EVENT_ORDER = [
    "run_start",
    "operation_start",
    "agent_start",
    "turn_start",
    "message_start",
    "message_end",
    "message_start",
    "text_delta",
    "turn",
    "message_end",
    "turn_messages",
    "agent_end",
    "operation",
    "idle",
    "run_end",
]
SESSION_FIELDS = ("harness", "session", "conversationId")
SESSION_EVENT_TYPES = set(PROMPT_EVENT_ORDER) - {"run_start", "run_end"}
TURN_EVENT_TYPES = {
    "turn_start",
    "message_start",
    "message_end",
    "text_delta",
    "turn",
    "turn_messages",
}
SHORT = 1.0  # generous ceiling for anything that should happen "at once"

ECHO_AGENT = define_agent(model="fake/echo")


class TextInput(BaseModel):
    text: str


class Out(BaseModel):
    summary: str


RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
async def make_runtime() -> AsyncIterator[RuntimeFactory]:
    """Runtimes on a private in-memory log; any run left active is cancelled at teardown."""
    made: list[Runtime] = []

    def make(
        workflows: Mapping[str, WorkflowDefinition],
        *,
        models: ModelRegistry | None = None,
        fake: FakeModel | None = None,
        env: Mapping[str, str] | None = None,
        deterministic_ids: bool = True,
    ) -> Runtime:
        if models is None:
            models = ModelRegistry(override=fake) if fake is not None else ModelRegistry()
        runtime = Runtime(
            dict(workflows),
            store=SqliteEventStore(":memory:"),
            clock=StepClock(),
            ids=SequentialIds() if deterministic_ids else None,
            models=models,
            env=dict(env or {}),
        )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        page = await runtime.list_runs(status="active")
        for pointer in page.runs:
            await runtime.cancel(pointer.run_id)
        await asyncio.wait_for(runtime.close(), SHORT)


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


async def _stream_length(runtime: Runtime, run_id: str) -> int:
    meta = await runtime.store.stream_meta(run_stream(run_id))
    return meta.length if meta is not None else 0


async def _until_persisted(runtime: Runtime, run_id: str, event_type: str) -> None:
    """Wait until an event of ``event_type`` is in the run's stream."""

    async def poll() -> None:
        while True:
            length = await _stream_length(runtime, run_id)  # before reading: no lost wake-up
            if event_type in _types(await runtime.events(run_id)):
                return
            await runtime.store.wait_for_append(run_stream(run_id), length=length, timeout=SHORT)

    await asyncio.wait_for(poll(), SHORT)


def _prompt_workflow() -> WorkflowDefinition:
    @define_workflow(agent=ECHO_AGENT)
    async def prompt_once(ctx: ActionContext[TextInput]) -> Out:
        session = await ctx.harness.session()
        response = await session.prompt(ctx.input.text)
        return Out(summary=response.text)

    return prompt_once


def _blocked_workflow(
    gate: asyncio.Event, entered: asyncio.Event | None = None
) -> WorkflowDefinition:
    @define_workflow(agent=ECHO_AGENT)
    async def blocked(ctx: ActionContext[TextInput]) -> str:
        if entered is not None:
            entered.set()
        await gate.wait()
        return ctx.input.text.upper()

    return blocked


# --- ids, admission, receipts --------------------------------------------------------------------


async def test_run_ids_are_run_ulids(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, deterministic_ids=False)
    receipts = [await runtime.invoke("p", {"text": f"t{i}"}) for i in range(3)]
    for receipt in receipts:
        assert RUN_ID.match(receipt.run_id), receipt.run_id
        assert receipt.workflow_name == "p"
    assert len({receipt.run_id for receipt in receipts}) == 3
    for receipt in receipts:
        record = await runtime.wait(receipt.run_id, timeout=SHORT)
        assert record.status == "completed"


async def test_invoke_returns_before_the_run_ends_with_an_active_record(
    make_runtime: RuntimeFactory,
) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    runtime = make_runtime({"blocked": _blocked_workflow(gate, entered)})

    receipt = await runtime.invoke("blocked", {"text": "hello"})

    record = await runtime.get_run(receipt.run_id)
    assert record is not None
    assert record.status == "active"
    assert record.workflow_name == "blocked"
    assert record.input == {"text": "hello"}
    assert ISO_MS.match(record.started_at)
    assert record.ended_at is None
    assert record.result is UNSET
    assert record.to_wire() == {
        "runId": receipt.run_id,
        "workflowName": "blocked",
        "status": "active",
        "startedAt": record.started_at,
        "input": {"text": "hello"},
    }
    # The workflow really is running (and blocked), not yet finished.
    await asyncio.wait_for(entered.wait(), SHORT)
    still = await runtime.get_run(receipt.run_id)
    assert still is not None
    assert still.status == "active"

    gate.set()
    done = await runtime.wait(receipt.run_id, timeout=SHORT)
    assert done.status == "completed"
    assert done.result == "HELLO"


async def test_input_is_snapshotted_at_invoke(make_runtime: RuntimeFactory) -> None:
    gate = asyncio.Event()
    runtime = make_runtime({"blocked": _blocked_workflow(gate)})
    payload: dict[str, Any] = {"text": "before"}
    receipt = await runtime.invoke("blocked", payload)
    payload["text"] = "after"
    gate.set()
    record = await runtime.wait(receipt.run_id, timeout=SHORT)
    assert record.input == {"text": "before"}
    assert record.result == "BEFORE"


# --- events ---------------------------------------------------------------------------------------


async def test_prompt_run_event_order(make_runtime: RuntimeFactory) -> None:
    fake = FakeModel().reply("a summary")
    runtime = make_runtime({"p": _prompt_workflow()}, fake=fake)
    record = await runtime.run("p", {"text": "long text"}, timeout=SHORT)
    events = await runtime.events(record.run_id)
    assert _types(events) == PROMPT_EVENT_ORDER


async def test_event_envelope(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("ok"))
    record = await runtime.run("p", {"text": "x"}, timeout=SHORT)
    events = await runtime.events(record.run_id)

    assert [event["eventIndex"] for event in events] == list(range(len(events)))
    for event in events:
        assert event["v"] == 3, event
        assert event["runId"] == record.run_id, event
        assert ISO_MS.match(event["timestamp"]), event
        assert "instanceId" not in event
    timestamps = [event["timestamp"] for event in events]
    assert timestamps == sorted(timestamps)


async def test_session_and_turn_correlation(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("ok"))
    record = await runtime.run("p", {"text": "x"}, timeout=SHORT)
    events = await runtime.events(record.run_id)

    session_events = [event for event in events if event["type"] in SESSION_EVENT_TYPES]
    assert len(session_events) == len(events) - 2
    conversation = session_events[0]["conversationId"]
    assert conversation.startswith("conv_")
    for event in session_events:
        assert event["harness"] == "default", event
        assert event["session"] == "default", event
        assert event["conversationId"] == conversation, event

    start = next(event for event in events if event["type"] == "operation_start")
    end = next(event for event in events if event["type"] == "operation")
    assert re.match(r"^op_[0-9A-HJKMNP-TV-Z]{26}$", start["operationId"])
    assert start["operationKind"] == "prompt"
    in_operation = events[start["eventIndex"] : end["eventIndex"] + 1]
    for event in in_operation:
        assert event["operationId"] == start["operationId"], event

    turn_events = [event for event in events if event["type"] in TURN_EVENT_TYPES]
    turn_id = turn_events[0]["turnId"]
    assert re.match(r"^turn_[0-9A-HJKMNP-TV-Z]{26}$", turn_id)
    for event in turn_events:
        assert event["turnId"] == turn_id, event
    turn_start = next(event for event in events if event["type"] == "turn_start")
    assert turn_start["purpose"] == "agent"

    for event in events:
        if event["type"] in ("run_start", "run_end"):
            for key in (*SESSION_FIELDS, "operationId", "turnId"):
                assert key not in event, (key, event)


async def test_run_start_payload(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("ok"))
    record = await runtime.run("p", {"text": "in"}, timeout=SHORT)
    start = (await runtime.events(record.run_id))[0]
    assert start["type"] == "run_start"
    assert start["eventIndex"] == 0
    assert start["workflowName"] == "p"
    assert start["startedAt"] == record.started_at
    assert start["input"] == {"text": "in"}


async def test_run_start_has_no_input_key_when_no_input(make_runtime: RuntimeFactory) -> None:
    @define_workflow(agent=ECHO_AGENT)
    async def plain(ctx: ActionContext[None]) -> int:
        return 7

    runtime = make_runtime({"plain": plain})
    record = await runtime.run("plain", timeout=SHORT)
    start = (await runtime.events(record.run_id))[0]
    assert "input" not in start
    assert record.input is UNSET
    assert "input" not in record.to_wire()
    assert record.result == 7


async def test_run_end_on_success(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("the summary"))
    record = await runtime.run("p", {"text": "x"}, timeout=SHORT)
    end = (await runtime.events(record.run_id))[-1]

    assert end["type"] == "run_end"
    assert end["result"] == {"summary": "the summary"}
    assert end["isError"] is False
    assert "error" not in end
    assert isinstance(end["durationMs"], int)
    assert end["durationMs"] >= 0
    assert record.status == "completed"
    assert record.is_error is False
    assert record.result == {"summary": "the summary"}
    assert record.error is None
    assert record.duration_ms == end["durationMs"]
    assert record.ended_at == end["timestamp"]


async def test_run_end_on_error(make_runtime: RuntimeFactory) -> None:
    @define_workflow(agent=ECHO_AGENT)
    async def failing(ctx: ActionContext[None]) -> None:
        raise ValueError("bad things")

    runtime = make_runtime({"failing": failing})
    record = await runtime.run("failing", timeout=SHORT)
    end = (await runtime.events(record.run_id))[-1]

    assert end["type"] == "run_end"
    assert end["result"] is None
    assert end["isError"] is True
    assert end["error"] == {"name": "ValueError", "message": "bad things"}
    assert isinstance(end["durationMs"], int)
    assert record.status == "errored"
    assert record.is_error is True
    assert record.error == {"name": "ValueError", "message": "bad things"}
    assert record.result is UNSET
    assert "result" not in record.to_wire()


async def test_run_end_error_keeps_the_flue_error_type(make_runtime: RuntimeFactory) -> None:
    @define_workflow(agent=ECHO_AGENT, output=Out)
    async def wrong_output(ctx: ActionContext[None]) -> Any:
        return {"summary": 3.5}

    runtime = make_runtime({"wrong_output": wrong_output})
    record = await runtime.run("wrong_output", timeout=SHORT)
    end = (await runtime.events(record.run_id))[-1]
    error = end["error"]
    assert error["name"] == "ActionOutputValidationError"
    assert error["type"] == "action_output_validation"
    assert error["message"] == 'Action "workflow" output does not match the required schema.'
    assert record.error is not None
    assert record.error["type"] == "action_output_validation"


async def test_result_null_is_kept_apart_from_absent(make_runtime: RuntimeFactory) -> None:
    @define_workflow(agent=ECHO_AGENT)
    async def nothing(ctx: ActionContext[None]) -> None:
        return None

    runtime = make_runtime({"nothing": nothing})
    record = await runtime.run("nothing", timeout=SHORT)
    assert record.status == "completed"
    assert record.result is None
    assert record.result is not UNSET
    assert record.to_wire()["result"] is None
    end = (await runtime.events(record.run_id))[-1]
    assert "result" in end
    assert end["result"] is None


async def test_a_waited_record_is_the_stored_record_for_every_outcome(
    make_runtime: RuntimeFactory,
) -> None:
    """``wait`` answers a run hosted here from its own run_end, without reading the store:
    what it returns must be exactly the record the store projected from the log."""

    @define_workflow(agent=ECHO_AGENT)
    async def nested(ctx: ActionContext[None]) -> Any:
        return {"values": [1, 2.5, None, "é"], "deep": {"x": {"y": True}}}

    @define_workflow(agent=ECHO_AGENT)
    async def failing(ctx: ActionContext[None]) -> None:
        raise ValueError("bad things")

    @define_workflow(agent=ECHO_AGENT)
    async def nothing(ctx: ActionContext[None]) -> None:
        return None

    gate, entered = asyncio.Event(), asyncio.Event()
    runtime = make_runtime(
        {
            "p": _prompt_workflow(),
            "nested": nested,
            "failing": failing,
            "nothing": nothing,
            "blocked": _blocked_workflow(gate, entered),
        },
        fake=FakeModel().reply("the summary"),
    )
    receipts = [
        await runtime.invoke("p", {"text": "x"}),
        await runtime.invoke("nested"),
        await runtime.invoke("failing"),
        await runtime.invoke("nothing"),
    ]
    blocked = await runtime.invoke("blocked", {"text": "x"})
    await asyncio.wait_for(entered.wait(), SHORT)
    cancelling = asyncio.ensure_future(runtime.wait(blocked.run_id, timeout=SHORT))
    await asyncio.sleep(0)
    await runtime.cancel(blocked.run_id)
    waited = [await runtime.wait(receipt.run_id, timeout=SHORT) for receipt in receipts]
    waited.append(await cancelling)

    statuses = [record.status for record in waited]
    assert statuses == ["completed", "completed", "errored", "completed", "errored"]
    for record in waited:
        stored = await runtime.get_run(record.run_id)
        assert stored is not None
        assert record == stored
        assert record.to_wire() == stored.to_wire()


# --- input validation and refusal before admission ------------------------------------------------


async def test_input_validation_failure_errors_the_run_without_initializing_the_agent(
    make_runtime: RuntimeFactory,
) -> None:
    calls: list[str] = []

    def initialize(ctx: AgentContext) -> AgentConfig:
        calls.append(ctx.id)
        return AgentConfig(model="fake/echo")

    @define_workflow(agent=define_agent(initialize))
    async def strict(ctx: ActionContext[TextInput]) -> str:
        return ctx.input.text

    runtime = make_runtime({"strict": strict})
    receipt = await runtime.invoke("strict", {"text": 12})
    record = await runtime.wait(receipt.run_id, timeout=SHORT)

    assert record.status == "errored"
    assert record.error is not None
    assert record.error["name"] == "ActionInputValidationError"
    assert record.error["type"] == "action_input_validation"
    assert record.error["message"] == 'Action "workflow" input does not match the required schema.'
    assert calls == []
    events = await runtime.events(receipt.run_id)
    assert _types(events) == ["run_start", "run_end"]
    assert events[-1]["error"]["type"] == "action_input_validation"

    ok = await runtime.run("strict", {"text": "fine"}, timeout=SHORT)
    assert ok.status == "completed"
    assert calls == [ok.run_id]


async def test_initializer_runs_once_per_run_with_the_run_id_and_env(
    make_runtime: RuntimeFactory,
) -> None:
    seen: list[tuple[str, str | None]] = []

    async def initialize(ctx: AgentContext) -> dict[str, Any]:
        seen.append((ctx.id, ctx.env.get("REGION")))
        return {"model": "fake/echo"}

    @define_workflow(agent=define_agent(initialize))
    async def twice(ctx: ActionContext[None]) -> str:
        first = await (await ctx.harness.session("a")).prompt("one")
        second = await (await ctx.harness.session("b")).prompt("two")
        return first.text + second.text

    runtime = make_runtime({"twice": twice}, env={"REGION": "eu"})
    record = await runtime.run("twice", timeout=SHORT)
    assert record.status == "completed"
    assert record.result == "onetwo"
    assert seen == [(record.run_id, "eu")]


async def test_initializer_unknown_field_errors_the_run(make_runtime: RuntimeFactory) -> None:
    agent = define_agent(lambda ctx: {"model": "fake/echo", "name": "x"})

    @define_workflow(agent=agent)
    async def named(ctx: ActionContext[None]) -> None:
        return None

    runtime = make_runtime({"named": named})
    record = await runtime.run("named", timeout=SHORT)
    assert record.status == "errored"
    assert record.error is not None
    assert '"name"' in record.error["message"]


@pytest.mark.parametrize("value", [{}, None, "text"], ids=repr)
async def test_input_to_a_schemaless_workflow_is_refused_without_a_run(
    make_runtime: RuntimeFactory, value: Any
) -> None:
    @define_workflow(agent=ECHO_AGENT)
    async def plain(ctx: ActionContext[None]) -> None:
        return None

    runtime = make_runtime({"plain": plain})
    with pytest.raises(WorkflowInputUnexpectedError) as caught:
        await runtime.invoke("plain", value)
    assert caught.value.type == "workflow_input_unexpected"
    assert (await runtime.list_runs()).runs == []


@pytest.mark.parametrize(
    "value",
    [{"text": {1, 2}}, {"text": float("nan")}, {"text": object()}, {1: "x"}],
    ids=["set", "nan", "object", "int-key"],
)
async def test_non_json_input_is_refused_without_a_run(
    make_runtime: RuntimeFactory, value: Any
) -> None:
    runtime = make_runtime({"p": _prompt_workflow()})
    with pytest.raises(WorkflowInputSerializationError) as caught:
        await runtime.invoke("p", value)
    assert caught.value.type == "workflow_input_serialization"
    assert (await runtime.list_runs()).runs == []


async def test_unknown_workflow_name(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()})
    with pytest.raises(WorkflowNotFoundError) as caught:
        await runtime.invoke("nope", {"text": "x"})
    assert caught.value.type == "workflow_not_found"
    assert caught.value.message == 'Workflow "nope" is not registered.'
    assert (await runtime.list_runs()).runs == []


async def test_unregistered_definition_is_not_discovered(make_runtime: RuntimeFactory) -> None:
    registered = _prompt_workflow()
    lookalike = _prompt_workflow()  # same code, different definition object
    runtime = make_runtime({"p": registered})
    with pytest.raises(WorkflowNotDiscoveredError) as caught:
        await runtime.invoke(lookalike, {"text": "x"})
    assert caught.value.type == "workflow_not_discovered"
    assert (await runtime.list_runs()).runs == []

    receipt = await runtime.invoke(registered, {"text": "x"})
    assert receipt.workflow_name == "p"


async def test_check_input_refuses_schema_invalid_input_without_a_run(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime({"p": _prompt_workflow()})
    with pytest.raises(ActionInputValidationError) as caught:
        runtime.check_input("p", {"text": ["not", "a", "string"]})
    assert caught.value.meta is not None
    assert caught.value.meta["issues"][0]["path"] == ["text"]
    with pytest.raises(ActionInputValidationError):
        runtime.check_input("p")
    assert runtime.check_input("p", {"text": "ok"}) == {"text": "ok"}
    assert (await runtime.list_runs()).runs == []


# --- settlement, closing, cancellation ------------------------------------------------------------


def _blocking_model() -> tuple[FakeModel, asyncio.Event, asyncio.Event]:
    """A model whose every request waits on ``gate``; ``started`` is set once a request arrived."""
    fake, gate, started = FakeModel(), asyncio.Event(), asyncio.Event()

    async def respond(request: ModelRequest) -> str:
        started.set()
        await gate.wait()
        return "late"

    fake.respond_with(respond)
    return fake, gate, started


def _operation_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] in ("operation_start", "operation", "idle")]


async def test_close_settles_an_unawaited_prompt_before_run_end(
    make_runtime: RuntimeFactory,
) -> None:
    fake, _gate, started = _blocking_model()

    @define_workflow(agent=ECHO_AGENT)
    async def fire_and_forget(ctx: ActionContext[None]) -> str:
        session = await ctx.harness.session()
        session.prompt("never answered")
        await started.wait()
        return "returned"

    runtime = make_runtime({"f": fire_and_forget}, fake=fake)
    record = await runtime.run("f", timeout=SHORT)

    assert record.status == "completed"
    assert record.result == "returned"
    events = await runtime.events(record.run_id)
    assert _types(_operation_events(events)) == ["operation_start", "operation", "idle"]
    operation = next(event for event in events if event["type"] == "operation")
    assert operation["isError"] is True
    assert operation["error"]["name"] == "AbortError"
    assert operation["eventIndex"] < events[-1]["eventIndex"]
    assert events[-1]["type"] == "run_end"
    assert _types(events)[-3:] == ["operation", "idle", "run_end"]


async def test_close_aborts_a_prompt_started_just_before_the_workflow_returns(
    make_runtime: RuntimeFactory,
) -> None:
    # As in Flue, a prompt exists as an operation from the moment it is called: returning right
    # after calling it must still record the operation, aborted, before run_end.
    fake, _gate, _started = _blocking_model()

    @define_workflow(agent=ECHO_AGENT)
    async def immediate(ctx: ActionContext[None]) -> str:
        session = await ctx.harness.session()
        session.prompt("never answered")
        return "returned"

    runtime = make_runtime({"f": immediate}, fake=fake)
    record = await runtime.run("f", timeout=SHORT)

    assert record.status == "completed"
    events = await runtime.events(record.run_id)
    assert _types(_operation_events(events)) == ["operation_start", "operation", "idle"]
    operation = next(event for event in events if event["type"] == "operation")
    assert operation["error"]["name"] == "AbortError"


async def test_nothing_is_appended_after_run_end(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("ok"))
    record = await runtime.run("p", {"text": "x"}, timeout=SHORT)
    path = run_stream(record.run_id)
    meta = await runtime.store.stream_meta(path)
    assert meta is not None
    assert meta.closed is True
    length = meta.length

    late = {"type": "log", "level": "info", "message": "late", "v": 3, "runId": record.run_id}
    with pytest.raises(StreamClosedError):
        await runtime.store.append(path, [late], expected_seq=length)
    with pytest.raises(StreamClosedError):
        await runtime.store.append(path, [late])

    assert await _stream_length(runtime, record.run_id) == length
    events = await runtime.events(record.run_id)
    assert events[-1]["type"] == "run_end"
    assert _types(events).count("run_end") == 1


async def test_cancel_a_blocked_run(make_runtime: RuntimeFactory) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    runtime = make_runtime({"blocked": _blocked_workflow(gate, entered)})
    receipt = await runtime.invoke("blocked", {"text": "x"})
    await asyncio.wait_for(entered.wait(), SHORT)

    assert await runtime.cancel(receipt.run_id) is True
    record = await runtime.wait(receipt.run_id, timeout=SHORT)

    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "run_cancelled"
    assert record.error["name"] == "RunCancelledError"
    end = (await runtime.events(receipt.run_id))[-1]
    assert end["type"] == "run_end"
    assert end["isError"] is True
    assert end["result"] is None
    assert end["error"]["type"] == "run_cancelled"

    assert await runtime.cancel(receipt.run_id) is False
    assert await runtime.cancel("run_00000000000000000000000099") is False


async def test_cancel_aborts_an_in_flight_prompt_and_records_it(
    make_runtime: RuntimeFactory,
) -> None:
    fake, _gate, started = _blocking_model()

    @define_workflow(agent=ECHO_AGENT)
    async def waiting(ctx: ActionContext[None]) -> str:
        session = await ctx.harness.session()
        return (await session.prompt("slow")).text

    runtime = make_runtime({"w": waiting}, fake=fake)
    receipt = await runtime.invoke("w")
    await asyncio.wait_for(started.wait(), SHORT)
    assert await runtime.cancel(receipt.run_id) is True
    record = await runtime.wait(receipt.run_id, timeout=SHORT)

    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "run_cancelled"
    events = await runtime.events(receipt.run_id)
    # Every operation that started is seen to end (aborted), then idle, before run_end.
    assert _types(_operation_events(events)) == ["operation_start", "operation", "idle"]
    operation = next(event for event in events if event["type"] == "operation")
    assert operation["isError"] is True
    assert operation["error"]["name"] == AbortError.__name__
    assert _types(events)[-1] == "run_end"


# --- logs -----------------------------------------------------------------------------------------


async def test_log_events(make_runtime: RuntimeFactory) -> None:
    @define_workflow(agent=ECHO_AGENT)
    async def logging_flow(ctx: ActionContext[None]) -> None:
        ctx.log.info("starting")
        ctx.log.warn("slow", seconds=3, tags=["a", "b"])
        try:
            raise ValueError("kaput")
        except ValueError as error:
            ctx.log.error("failed", error=error)

    runtime = make_runtime({"logging_flow": logging_flow})
    record = await runtime.run("logging_flow", timeout=SHORT)
    events = await runtime.events(record.run_id)
    logs = [event for event in events if event["type"] == "log"]

    assert [(log["level"], log["message"]) for log in logs] == [
        ("info", "starting"),
        ("warn", "slow"),
        ("error", "failed"),
    ]
    assert "attributes" not in logs[0]
    assert logs[1]["attributes"] == {"seconds": 3, "tags": ["a", "b"]}
    error = logs[2]["attributes"]["error"]
    assert set(error) == {"name", "message", "stack"}
    assert error["name"] == "ValueError"
    assert error["message"] == "kaput"
    assert "ValueError: kaput" in error["stack"]
    assert "Traceback" in error["stack"]
    for log in logs:
        assert log["v"] == 3
        assert log["runId"] == record.run_id
        for key in SESSION_FIELDS:
            assert key not in log
    assert _types(events) == ["run_start", "log", "log", "log", "run_end"]


# --- waiting and following ------------------------------------------------------------------------


async def test_wait_times_out_for_a_blocked_run(make_runtime: RuntimeFactory) -> None:
    gate = asyncio.Event()
    runtime = make_runtime({"blocked": _blocked_workflow(gate)})
    receipt = await runtime.invoke("blocked", {"text": "x"})

    with pytest.raises(TimeoutError):
        await runtime.wait(receipt.run_id, timeout=0.1)

    record = await runtime.get_run(receipt.run_id)
    assert record is not None
    assert record.status == "active"
    gate.set()
    done = await runtime.wait(receipt.run_id, timeout=SHORT)
    assert done.status == "completed"


async def test_follow_yields_events_live_and_stops_after_run_end(
    make_runtime: RuntimeFactory,
) -> None:
    gate = asyncio.Event()

    @define_workflow(agent=ECHO_AGENT)
    async def stepwise(ctx: ActionContext[None]) -> str:
        ctx.log.info("before")
        await gate.wait()
        ctx.log.info("after")
        return "done"

    runtime = make_runtime({"stepwise": stepwise})
    receipt = await runtime.invoke("stepwise")
    seen: list[StoredEvent] = []
    first_log = asyncio.Event()

    async def consume() -> None:
        async for event in runtime.follow(receipt.run_id):
            seen.append(event)
            if event.data.get("message") == "before":
                first_log.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(first_log.wait(), SHORT)
    # The follower got "before" while the run is still blocked: it reads live, not after the end.
    assert [event.data["type"] for event in seen] == ["run_start", "log"]
    assert not consumer.done()
    record = await runtime.get_run(receipt.run_id)
    assert record is not None
    assert record.status == "active"

    gate.set()
    await asyncio.wait_for(consumer, SHORT)
    assert [event.data["type"] for event in seen] == ["run_start", "log", "log", "run_end"]
    assert [event.seq for event in seen] == [0, 1, 2, 3]
    assert seen[-1].data["result"] == "done"


async def test_follow_from_an_offset(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime({"p": _prompt_workflow()}, fake=FakeModel().reply("ok"))
    record = await runtime.run("p", {"text": "x"}, timeout=SHORT)
    everything = [event async for event in runtime.follow(record.run_id)]
    rest = [event async for event in runtime.follow(record.run_id, offset=everything[4].offset)]
    assert [event.seq for event in rest] == list(range(5, len(everything)))


# --- single writer --------------------------------------------------------------------------------


async def test_a_stale_writer_is_fenced(make_runtime: RuntimeFactory) -> None:
    gate = asyncio.Event()
    runtime = make_runtime({"blocked": _blocked_workflow(gate)})
    receipt = await runtime.invoke("blocked", {"text": "x"})
    await _until_persisted(runtime, receipt.run_id, "run_start")
    path = run_stream(receipt.run_id)
    length = await _stream_length(runtime, receipt.run_id)
    assert length == 1

    stale = {"type": "log", "level": "info", "message": "zombie", "v": 3, "runId": receipt.run_id}
    with pytest.raises(StreamConflictError) as caught:
        await runtime.store.append(path, [stale], expected_seq=0)
    assert caught.value.expected == 0
    assert caught.value.actual == 1
    assert await _stream_length(runtime, receipt.run_id) == 1

    # The rightful writer is undisturbed.
    gate.set()
    record = await runtime.wait(receipt.run_id, timeout=SHORT)
    assert record.status == "completed"
    assert _types(await runtime.events(receipt.run_id)) == ["run_start", "run_end"]


async def test_a_run_whose_stream_was_taken_over_stops_writing(
    make_runtime: RuntimeFactory,
) -> None:
    gate = asyncio.Event()

    @define_workflow(agent=ECHO_AGENT)
    async def talkative(ctx: ActionContext[None]) -> str:
        await gate.wait()
        ctx.log.info("after takeover")
        return "done"

    runtime = make_runtime({"talkative": talkative})
    receipt = await runtime.invoke("talkative")
    await _until_persisted(runtime, receipt.run_id, "run_start")
    path = run_stream(receipt.run_id)
    usurper = {
        "type": "log",
        "level": "info",
        "message": "new owner",
        "v": 3,
        "eventIndex": 1,
        "timestamp": "2026-01-01T00:00:01.000Z",
        "runId": receipt.run_id,
    }
    await runtime.store.append(path, [usurper], expected_seq=1)

    gate.set()
    await asyncio.wait_for(runtime.backend.join(receipt.run_id), SHORT)
    messages = [
        (event["type"], event.get("message")) for event in await runtime.events(receipt.run_id)
    ]
    assert messages == [("run_start", None), ("log", "new owner")]
    meta = await runtime.store.stream_meta(path)
    assert meta is not None
    assert meta.closed is False


# --- the kit is the same runtime ------------------------------------------------------------------


async def test_flue_fixture_runs_a_definition(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("fixture reply")
    workflow = _prompt_workflow()
    result = await flue.run_async(workflow, {"text": "via the fixture"})
    assert RUN_ID.match(result.run_id)
    assert result.status == "completed"
    assert result.result == {"summary": "fixture reply"}
    assert result.event_types == PROMPT_EVENT_ORDER
    assert isinstance(result.record, RunRecord)
    assert result.record.input == {"text": "via the fixture"}
    assert fake_model.requests[0].messages[-1]["content"] == [
        {"type": "text", "text": "via the fixture"}
    ]


class _ClosingProvider:
    """A provider holding connections: the runtime must close it when it closes."""

    name = "closing"
    api = "closing-messages"

    def __init__(self) -> None:
        self.closed = 0

    async def complete(self, request: ModelRequest, on_stream: Any) -> Any:
        raise AssertionError("not called")

    async def aclose(self) -> None:
        self.closed += 1


async def test_closing_a_runtime_closes_its_model_providers() -> None:
    provider = _ClosingProvider()
    runtime = Runtime(
        {}, store=SqliteEventStore(":memory:"), models=ModelRegistry({"closing": provider})
    )
    await runtime.close()
    assert provider.closed == 1
