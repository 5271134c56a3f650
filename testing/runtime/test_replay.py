"""Resuming a run by replay: a run cut off at any point of its log and resumed ends exactly as
the same run uninterrupted, performing only what its log lacked."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_tool, define_workflow
from flue_actors._clock import StepClock
from flue_actors._events import RunAdmittedEvent
from flue_actors._harness.replay import Replay, lane_of
from flue_actors._ids import SequentialIds
from flue_actors._runtime import WorkflowRegistry
from flue_actors._runtime.discovery import DiscoveredWorkflow
from flue_actors._runtime.run_actor import RunActor, read_run_events
from flue_actors._runtime.services import RunServices
from flue_actors.models import ModelRegistry, ModelRequest, RetryPolicy
from flue_actors.store import SqliteEventStore
from flue_actors.testing import FakeModel, FakeToolCall, FakeTurn

RUN_ID = "run_01M86AZC2TTN344AA5W93H9KF0"
TIME_FIELDS = {"timestamp", "durationMs"}


class Lookup(BaseModel):
    key: str


class Ops(BaseModel):
    ops: list[dict[str, Any]]


class World:
    """What the outside world saw: tool runs and model calls, counted across lives."""

    def __init__(self) -> None:
        self.tool_runs = 0


WORLD = World()


async def lookup(args: Lookup) -> str:
    WORLD.tool_runs += 1
    return f"value of {args.key}"


agent = define_agent(
    model="fake/scripted",
    instructions="Do as told.",
    tools=[define_tool(name="lookup", description="Look up a key.", input=Lookup, run=lookup)],
)


@define_workflow(agent=agent)
async def ops(ctx: ActionContext[Ops]) -> dict[str, Any]:
    outputs: list[Any] = []
    session = await ctx.harness.session()
    for number, op in enumerate(ctx.input.ops):
        kind = op["kind"]
        if kind == "prompt":
            response = await session.prompt(op["text"])
            outputs.append(response.text)
        elif kind == "shell":
            result = await ctx.harness.shell(op["command"])
            outputs.append([result.stdout, result.stderr, result.exit_code])
        elif kind == "session_shell":
            result = await session.shell(op["command"])
            outputs.append(result.stdout)
        elif kind == "write":
            await ctx.harness.fs.write_file(op["path"], op["text"])
            outputs.append(await ctx.harness.fs.read_file(op["path"]))
        elif kind == "task":
            response = await session.task(op["text"])
            outputs.append(response.text)
        elif kind == "compact":
            await session.compact()
            outputs.append(len(session.messages))
        elif kind == "gather":
            # Concurrent sessions (as workflows/fanout.py): each finishes after its own number
            # of model turns, so they complete in another order than they are asked in.
            async def branch(index: int, text: str, number: int = number) -> str:
                branch_session = await ctx.harness.session(f"gather-{number}-{index}")
                if text.startswith("task "):
                    return str((await branch_session.task(text[5:])).text)
                return (await branch_session.prompt(text)).text

            texts = op["texts"]
            outputs.append(await asyncio.gather(*(branch(i, t) for i, t in enumerate(texts))))
    return {"outputs": outputs}


def respond(request: ModelRequest) -> FakeTurn:
    """A model that answers from the request alone, so every life answers alike: a prompt
    ``tools:N ...`` calls ``lookup`` N times (one per turn), then answers."""
    last = request.messages[-1]
    first_user = next(m for m in reversed(request.messages) if m["role"] == "user")
    text = " ".join(b.get("text", "") for b in first_user["content"] if b.get("type") == "text")
    wanted = int(text.split(":", 1)[1].split()[0]) if text.startswith("tools:") else 0
    done = 0
    for message in reversed(request.messages):
        if message is first_user:
            break
        done += message["role"] == "toolResult"
    if wanted > done:
        call_id = f"call_{len(request.messages)}"
        return FakeTurn(
            text="calling",
            tool_calls=[FakeToolCall("lookup", {"key": f"k{done}"}, call_id)],
            chunks=["call", "ing"],
        )
    reply = f"answer to {text[:20]} after {len(request.messages)} messages"
    if last["role"] == "toolResult":
        reply += " with " + last["content"][0]["text"]
    return FakeTurn(text=reply, chunks=[reply[:5], reply[5:]])


async def respond_slowly(request: ModelRequest) -> FakeTurn:
    """``respond``, after as many turns of the event loop as the prompt's ``wait:N`` asks:
    concurrent sessions then finish in an order of the example's choosing, not the order they
    were asked in (deterministically: no timers)."""
    first_user = next(m for m in reversed(request.messages) if m["role"] == "user")
    text = " ".join(b.get("text", "") for b in first_user["content"] if b.get("type") == "text")
    if " wait:" in text:
        for _ in range(int(text.rsplit(" wait:", 1)[1]) * 10):
            await asyncio.sleep(0)
    return respond(request)


def services(store: SqliteEventStore, model: FakeModel) -> RunServices:
    registry = WorkflowRegistry()
    registry.register(DiscoveredWorkflow(name="ops", definition=ops))
    retry = RetryPolicy(sleep=lambda _s: asyncio.sleep(0), jitter=lambda: 0.0)
    return RunServices(
        store=store,
        workflows=registry,
        models=ModelRegistry(override=model, retry=retry),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )


def header(op_list: list[dict[str, Any]]) -> RunAdmittedEvent:
    return {
        "type": "run_admitted",
        "runId": RUN_ID,
        "workflowName": "ops",
        "startedAt": "2026-01-01T00:00:00.000Z",
        "input": {"ops": op_list},  # type: ignore[dict-item]
    }


async def uninterrupted(op_list: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    store = SqliteEventStore(":memory:")
    model = FakeModel().respond_with(respond_slowly)
    try:
        await store.admit_run(header(op_list))
        await RunActor(header(op_list), services(store, model)).run()
        events, _ = await read_run_events(store, RUN_ID)
        return events, len(model.requests)
    finally:
        await store.close()


async def resumed(
    op_list: list[dict[str, Any]], prefix: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """The run as a crash leaves it (``prefix`` durable), resumed by a new RunActor."""
    store = SqliteEventStore(":memory:")
    model = FakeModel().respond_with(respond_slowly)
    try:
        await store.admit_run(header(op_list))
        if prefix:
            await store.append(f"runs/{RUN_ID}", prefix, expected_seq=0)
        recorded, length = await read_run_events(store, RUN_ID)
        actor = RunActor(
            header(op_list), services(store, model), recorded=recorded, stream_length=length
        )
        await actor.run()
        events, _ = await read_run_events(store, RUN_ID)
        return events, len(model.requests)
    finally:
        await store.close()


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Payloads as a reader compares two lives: without resumptions, streaming detail (a turn
    cut off mid-stream is asked again) and times (read anew by the new owner)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIME_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    kept = [e for e in events if e["type"] not in {"run_resume", "text_delta"}]
    # Concurrent sessions interleave differently in each life: each session's own events, in
    # their order, are what must be the same (a stable sort by session keeps that order).
    kept.sort(key=lambda e: repr(lane_of(e)))
    return [strip({k: v for k, v in e.items() if k != "eventIndex"}) for e in kept]


operation = st.one_of(
    st.builds(
        lambda n, word: {"kind": "prompt", "text": f"tools:{n} {word}"},
        st.integers(0, 2),
        st.sampled_from(["alpha", "beta", "gamma"]),
    ),
    st.builds(
        lambda word: {"kind": "shell", "command": f"echo {word}; echo oops >&2"},
        st.sampled_from(["one", "two"]),
    ),
    st.builds(lambda word: {"kind": "session_shell", "command": f"echo {word}"}, st.just("hi")),
    st.builds(
        lambda name: {"kind": "write", "path": f"/workspace/{name}.txt", "text": name},
        st.sampled_from(["a", "b"]),
    ),
    st.builds(lambda n: {"kind": "task", "text": f"tools:{n} sub"}, st.integers(0, 1)),
    st.just({"kind": "compact"}),
    st.builds(
        lambda texts: {"kind": "gather", "texts": texts},
        st.lists(
            st.builds(
                lambda task, n, word, wait: (
                    f"{'task ' if task else ''}tools:{n} {word} wait:{wait}"
                ),
                st.booleans(),
                st.integers(0, 2),
                st.sampled_from(["red", "green"]),
                st.integers(0, 3),
            ),
            min_size=2,
            max_size=3,
        ),
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(op_list=st.lists(operation, min_size=1, max_size=5), cut=st.floats(0, 1))
def test_a_run_resumed_from_any_point_ends_as_if_never_interrupted(
    op_list: list[dict[str, Any]], cut: float
) -> None:
    full, calls = asyncio.run(uninterrupted(op_list))
    assert full[-1]["type"] == "run_end"
    point = int(cut * (len(full) - 1))  # any durable prefix, run_end excluded
    prefix = full[:point]
    tools_before = WORLD.tool_runs
    events, resumed_calls = asyncio.run(resumed(op_list, prefix))
    tool_runs = WORLD.tool_runs - tools_before

    assert events[-1]["type"] == "run_end"
    assert events[-1]["isError"] is False, events[-1]
    assert events[-1]["result"] == full[-1]["result"]
    assert [e["eventIndex"] for e in events] == list(range(len(events)))  # gap-free
    assert events[:point] == prefix  # nothing durable was touched
    assert [e["type"] for e in events].count("run_resume") == 1
    assert comparable(events) == comparable(full)
    # Only what the log lacked was asked again: model turns whose ``turn`` was not durable.
    answered = sum(1 for e in prefix if e["type"] == "turn")
    assert resumed_calls == calls - answered
    recorded_lookups = sum(
        1 for e in prefix if e["type"] == "tool" and e.get("toolName") == "lookup"
    )
    total_lookups = sum(1 for e in full if e["type"] == "tool" and e.get("toolName") == "lookup")
    assert tool_runs == total_lookups - recorded_lookups


@given(
    turns=st.lists(st.sampled_from(["session-a", "session-b", "session-c"]), max_size=12),
    resumed=st.booleans(),
)
def test_each_session_of_a_resumed_run_heals_its_first_live_turn_only(
    turns: list[str], resumed: bool
) -> None:
    """Concurrent sessions may each have had a turn in a Message Batch at the crash: the first
    live turn of every session searches for it (from the same instant), no later one does, and
    a run that was not resumed never searches."""
    replay = Replay([])
    if resumed:
        replay.heal_since_ms = 1_000
    healed = [replay.heal_since(("h", session)) for session in turns]
    firsts = [session not in turns[:n] for n, session in enumerate(turns)]
    assert healed == [1_000 if resumed and first else None for first in firsts]
