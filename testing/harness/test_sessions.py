"""The harness and its sessions (reference 1.4, 1.5): session lookup, one operation per session,
abort, tool calls, usage, model selection, model errors, and the sandbox filesystem.

Most tests drive a :class:`Harness` directly with a recording sink; the events are the same ones
a run's stream receives (minus the run envelope).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from flue_actors import (
    AbortError,
    ActionContext,
    AgentConfig,
    Harness,
    ModelNotResolvedError,
    ModelRegistry,
    ModelRequest,
    ModelResponse,
    OperationFailedError,
    SessionAlreadyExistsError,
    SessionBusyError,
    SessionNotFoundError,
    Usage,
    define_agent,
    define_tool,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._harness import FileStat, MemoryFs, ModelRef, PromptResponse
from flue_actors._ids import SequentialIds
from flue_actors.errors import SandboxPathError
from flue_actors.models import Cost, StreamListener, TextDelta, ToolSpec
from flue_actors.testing import FakeModel, FakeTurn, FlueTestKit, RecordingSink

SHORT = 1.0


def make_harness(
    fake: FakeModel | None = None,
    *,
    models: ModelRegistry | None = None,
    sink: RecordingSink | None = None,
    **config: Any,
) -> Harness:
    if models is None:
        models = ModelRegistry(override=fake) if fake is not None else ModelRegistry()
    config.setdefault("model", "fake/echo")
    return Harness(
        config=AgentConfig(**config),
        models=models,
        sink=sink or RecordingSink(),
        clock=StepClock(),
        ids=SequentialIds(),
    )


def blocking_model() -> tuple[FakeModel, asyncio.Event, asyncio.Event]:
    """A model whose requests wait on the returned gate; ``arrived`` is set by the first request."""
    fake, gate, arrived = FakeModel(), asyncio.Event(), asyncio.Event()

    async def respond(request: ModelRequest) -> str:
        arrived.set()
        await gate.wait()
        return "released"

    fake.respond_with(respond)
    return fake, gate, arrived


# --- sessions ----------------------------------------------------------------------------------


async def test_harness_name_is_default() -> None:
    assert make_harness().name == "default"


async def test_session_is_get_or_create() -> None:
    harness = make_harness()
    first = await harness.session()
    again = await harness.session("default")
    other = await harness.session("notes")
    assert first is again
    assert first.name == "default"
    assert other is not first
    assert other.name == "notes"
    assert other.conversation_id != first.conversation_id
    assert first.conversation_id.startswith("conv_")
    assert await harness.session("notes") is other


async def test_sessions_get_missing_raises() -> None:
    harness = make_harness()
    with pytest.raises(SessionNotFoundError) as caught:
        await harness.sessions.get()
    assert caught.value.type == "session_not_found"
    assert caught.value.message == 'Session "default" does not exist.'
    with pytest.raises(SessionNotFoundError):
        await harness.sessions.get("other")


async def test_sessions_create_existing_raises() -> None:
    harness = make_harness()
    created = await harness.sessions.create("work")
    assert await harness.sessions.get("work") is created
    assert await harness.session("work") is created
    with pytest.raises(SessionAlreadyExistsError) as caught:
        await harness.sessions.create("work")
    assert caught.value.type == "session_already_exists"
    assert caught.value.message == 'Session "work" already exists.'

    await harness.session()
    with pytest.raises(SessionAlreadyExistsError):
        await harness.sessions.create()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("task:child", 'Session names beginning with "task:" are reserved for delegated tasks.'),
        ("action:abc", 'Session names beginning with "action:" are reserved for Actions.'),
    ],
)
async def test_reserved_session_names_are_refused(name: str, message: str) -> None:
    harness = make_harness()
    with pytest.raises(ValueError, match=message):
        await harness.session(name)
    with pytest.raises(ValueError, match=message):
        await harness.sessions.create(name)
    with pytest.raises(SessionNotFoundError):
        await harness.sessions.get(name)


# --- one operation at a time -------------------------------------------------------------------


async def test_second_prompt_while_one_runs_is_busy() -> None:
    fake, gate, arrived = blocking_model()
    harness = make_harness(fake)
    session = await harness.session()
    running = session.prompt("first")
    await asyncio.wait_for(arrived.wait(), SHORT)

    with pytest.raises(SessionBusyError) as caught:
        session.prompt("second")
    assert caught.value.type == "session_busy"
    assert caught.value.message == 'Session "default" is busy running prompt.'

    gate.set()
    response = await asyncio.wait_for(running, SHORT)
    assert response.text == "released"
    # Once the first operation is over the session takes the next one.
    again = await asyncio.wait_for(session.prompt("third"), SHORT)
    assert again.text == "released"
    assert len(fake.requests) == 2


async def test_differently_named_sessions_prompt_concurrently() -> None:
    fake, both = FakeModel(), asyncio.Event()
    arrived: list[str] = []

    async def respond(request: ModelRequest) -> str:
        text = request.messages[-1]["content"][0]["text"]
        arrived.append(text)
        if len(arrived) == 2:
            both.set()
        await both.wait()  # only returns once both sessions are mid-prompt
        return f"re: {text}"

    fake.respond_with(respond)
    harness = make_harness(fake)
    left, right = await harness.session("left"), await harness.session("right")
    results = await asyncio.wait_for(asyncio.gather(left.prompt("L"), right.prompt("R")), SHORT)
    assert [result.text for result in results] == ["re: L", "re: R"]
    assert sorted(arrived) == ["L", "R"]


# --- abort ----------------------------------------------------------------------------------------


async def test_abort_makes_the_await_raise_abort_error() -> None:
    fake, _gate, arrived = blocking_model()
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink)
    session = await harness.session()
    handle = session.prompt("slow")
    await asyncio.wait_for(arrived.wait(), SHORT)

    handle.abort("user pressed stop")

    with pytest.raises(AbortError) as caught:
        await asyncio.wait_for(handle, SHORT)
    assert not isinstance(caught.value, asyncio.CancelledError)
    assert caught.value.reason == "user pressed stop"
    assert handle.aborted
    assert handle.done

    operation = sink.of("operation")
    assert len(operation) == 1
    assert operation[0]["isError"] is True
    assert operation[0]["operationKind"] == "prompt"
    assert operation[0]["error"]["name"] == "AbortError"
    assert operation[0]["error"]["message"] == "user pressed stop"
    assert "result" not in operation[0]
    assert sink.types[-2:] == ["operation", "idle"]
    assert sink.of("idle")[0]["session"] == "default"


async def test_session_is_usable_after_an_abort() -> None:
    fake, gate, arrived = blocking_model()
    harness = make_harness(fake)
    session = await harness.session()
    handle = session.prompt("slow")
    await asyncio.wait_for(arrived.wait(), SHORT)
    handle.abort()
    with pytest.raises(AbortError):
        await handle
    gate.set()
    response = await asyncio.wait_for(session.prompt("next"), SHORT)
    assert response.text == "released"


async def test_abort_right_after_starting_raises_abort_error_and_frees_the_session() -> None:
    fake = FakeModel().reply("never used")
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink)
    session = await harness.session()
    handle = session.prompt("aborted at once")
    handle.abort("changed my mind")

    with pytest.raises(AbortError):
        await asyncio.wait_for(handle, SHORT)
    # The session must not stay "busy" forever because the operation was aborted early.
    response = await asyncio.wait_for(session.prompt("after"), SHORT)
    assert response.text == "never used"


async def test_abort_after_completion_is_a_no_op() -> None:
    harness = make_harness(FakeModel().reply("done"))
    session = await harness.session()
    handle = session.prompt("quick")
    assert (await handle).text == "done"
    handle.abort()
    assert not handle.aborted
    assert (await handle).text == "done"


# --- prompts, tools, usage ------------------------------------------------------------------------


class AddArgs(BaseModel):
    a: int
    b: int


async def _add(args: AddArgs) -> int:
    return args.a + args.b


async def _explode(args: AddArgs) -> int:
    raise ValueError(f"cannot add {args.a}")


ADD = define_tool(name="add", description="Add two integers.", input=AddArgs, run=_add)
EXPLODE = define_tool(name="explode", description="Always fails.", input=AddArgs, run=_explode)


def _tool_results(request: ModelRequest) -> list[dict[str, Any]]:
    return [message for message in request.messages if message["role"] == "toolResult"]


async def test_prompt_response_and_model_request() -> None:
    fake = FakeModel().reply("hello back")
    harness = make_harness(fake, instructions="Be terse.", thinking_level="high")
    session = await harness.session()
    response = await session.prompt("hello")

    assert isinstance(response, PromptResponse)
    assert response.text == "hello back"
    assert response.model == ModelRef(provider="fake", id="echo")
    request = fake.requests[0]
    assert request.system_prompt == "Be terse."
    assert request.thinking_level == "high"
    assert request.model == "echo"
    assert [message["role"] for message in request.messages] == ["user"]
    assert request.messages[0]["content"] == [{"type": "text", "text": "hello"}]


async def test_conversation_continues_within_a_session() -> None:
    fake = FakeModel().reply("one").reply("two")
    harness = make_harness(fake)
    session = await harness.session()
    await session.prompt("first")
    await session.prompt("second")
    roles = [message["role"] for message in fake.requests[1].messages]
    assert roles == ["user", "assistant", "user"]
    assert fake.requests[1].messages[1]["content"] == [{"type": "text", "text": "one"}]
    other = await harness.session("fresh")
    fake.reply("three")
    await other.prompt("third")
    assert [message["role"] for message in fake.requests[2].messages] == ["user"]


async def test_tool_call_runs_the_tool_and_feeds_the_result_back() -> None:
    fake = FakeModel().reply("", tool_calls=[("add", {"a": 2, "b": 3})]).reply("It is 5.")
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink, tools=[ADD])
    session = await harness.session()
    response = await session.prompt("What is 2 + 3?")

    assert response.text == "It is 5."
    # The workspace built-ins come first, then the agent's own tools.
    assert [spec.name for spec in fake.requests[0].tools] == [
        "read",
        "write",
        "edit",
        "bash",
        "grep",
        "glob",
        "add",
    ]
    assert fake.requests[0].tools[-1] == ToolSpec(
        "add", "Add two integers.", AddArgs.model_json_schema()
    )
    results = _tool_results(fake.requests[1])
    assert len(results) == 1
    assert results[0]["toolCallId"] == "call_1"
    assert results[0]["toolName"] == "add"
    assert results[0]["isError"] is False
    assert results[0]["content"] == [{"type": "text", "text": "5"}]
    assert [message["role"] for message in fake.requests[1].messages] == [
        "user",
        "assistant",
        "toolResult",
    ]

    start, done = sink.of("tool_start"), sink.of("tool")
    assert [(event["toolName"], event["toolCallId"]) for event in start] == [("add", "call_1")]
    assert done[0]["toolName"] == "add"
    assert done[0]["toolCallId"] == "call_1"
    assert done[0]["isError"] is False
    assert done[0]["result"]["content"] == [{"type": "text", "text": "5"}]
    assert isinstance(done[0]["durationMs"], int)
    assert sink.types.index("tool_start") < sink.types.index("tool")
    # Two model turns: the tool round trip, then the answer.
    assert sink.types.count("turn_start") == 2
    assert sink.types.count("turn") == 2
    first_turn_messages = sink.of("turn_messages")[0]
    assert [result["toolCallId"] for result in first_turn_messages["toolResults"]] == ["call_1"]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (("add", {"a": "two", "b": 3}), 'Arguments for tool "add" do not match'),
        (("add", {"a": 1}), 'Arguments for tool "add" do not match'),
        (("subtract", {"a": 1, "b": 2}), 'Tool "subtract" is not available'),
        (("explode", {"a": 7, "b": 0}), "ValueError: cannot add 7"),
    ],
    ids=["wrong-type", "missing-field", "unknown-tool", "tool-raises"],
)
async def test_bad_tool_calls_return_an_error_result_to_the_model(
    call: tuple[str, dict[str, Any]], fragment: str
) -> None:
    fake = FakeModel().reply("", tool_calls=[call]).reply("recovered")
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink, tools=[ADD, EXPLODE])
    session = await harness.session()
    response = await session.prompt("try it")

    assert response.text == "recovered"
    results = _tool_results(fake.requests[1])
    assert len(results) == 1
    assert results[0]["isError"] is True
    assert results[0]["toolName"] == call[0]
    assert fragment in results[0]["content"][0]["text"]
    tool_event = sink.of("tool")[0]
    assert tool_event["isError"] is True
    operation = sink.of("operation")[0]
    assert operation["isError"] is False


async def test_usage_is_summed_over_turns() -> None:
    fake = (
        FakeModel()
        .reply(
            "",
            tool_calls=[("add", {"a": 1, "b": 1})],
            usage=Usage(input=100, output=20, cache_read=5, cost=Cost(input=0.25, output=0.5)),
        )
        .reply("2", usage=Usage(input=130, output=7, cache_write=3, cost=Cost(input=0.5)))
    )
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink, tools=[ADD])
    session = await harness.session()
    response = await session.prompt("1 + 1")

    usage = response.usage
    assert (usage.input, usage.output, usage.cache_read, usage.cache_write) == (230, 27, 5, 3)
    assert usage.total_tokens == 265
    assert usage.cost.total == pytest.approx(1.25)
    wire = sink.of("operation")[0]["usage"]
    assert wire["input"] == 230
    assert wire["output"] == 27
    assert wire["cacheRead"] == 5
    assert wire["cacheWrite"] == 3
    assert wire["totalTokens"] == 265
    assert wire["cost"]["total"] == pytest.approx(1.25)
    assert sink.of("operation")[0]["result"] == {"text": "2"}


class EchoModelName:
    """A provider named ``scripted`` that answers with the model id it was asked for."""

    name = "scripted"
    api = "scripted"

    def __init__(self) -> None:
        self.models: list[str] = []

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        self.models.append(request.model)
        on_stream(TextDelta(request.model))
        return ModelResponse(content=[{"type": "text", "text": request.model}])


async def test_per_call_model_override_resolves() -> None:
    scripted = EchoModelName()
    harness = make_harness(models=ModelRegistry({"scripted": scripted}), model="fake/echo")
    session = await harness.session()

    default = await session.prompt("hello")
    assert default.text == "hello"
    assert default.model == ModelRef(provider="fake", id="echo")

    chosen = await session.prompt("hello", model="scripted/special-1")
    assert chosen.text == "special-1"
    assert chosen.model == ModelRef(provider="scripted", id="special-1")
    assert scripted.models == ["special-1"]


async def test_per_call_model_reaches_a_fake_model_override() -> None:
    fake = FakeModel().reply("a").reply("b")
    harness = make_harness(fake, model="anthropic/claude-haiku-4-5")
    session = await harness.session()
    await session.prompt("x")
    await session.prompt("y", model="anthropic/claude-opus-4")
    assert [request.model for request in fake.requests] == ["claude-haiku-4-5", "claude-opus-4"]


async def test_unresolvable_per_call_model_is_refused() -> None:
    harness = make_harness()
    session = await harness.session()
    with pytest.raises(ModelNotResolvedError, match=r'model "nowhere/x" could not be resolved'):
        session.prompt("x", model="nowhere/x")


async def test_model_error_fails_the_operation() -> None:
    fake = FakeModel()

    def respond(request: ModelRequest) -> str:
        raise RuntimeError("provider exploded")

    fake.respond_with(respond)
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink)
    session = await harness.session()

    with pytest.raises(OperationFailedError) as caught:
        await session.prompt("hi")
    assert caught.value.type == "operation_failed"
    assert caught.value.message == "prompt failed: provider exploded"

    turns = sink.of("turn")
    assert len(turns) == 1
    assert turns[0]["isError"] is True
    assert "provider exploded" in turns[0]["response"]["error"]["message"]
    operation = sink.of("operation")[0]
    assert operation["isError"] is True
    assert operation["error"]["type"] == "operation_failed"
    assert sink.types[-2:] == ["operation", "idle"]
    # The failed operation released the session.
    fake.reply("fine now")
    assert (await session.prompt("again")).text == "fine now"


async def test_responder_may_return_a_fake_turn_with_thinking_and_chunks() -> None:
    fake = FakeModel().respond_with(
        lambda request: FakeTurn(text="abc", thinking="hmm", chunks=["a", "bc"])
    )
    sink = RecordingSink()
    harness = make_harness(fake, sink=sink)
    response = await (await harness.session()).prompt("go")
    assert response.text == "abc"
    assert [event["text"] for event in sink.of("text_delta")] == ["a", "bc"]
    assert [event["type"] for event in sink.events if event["type"].startswith("thinking")] == [
        "thinking_start",
        "thinking_delta",
        "thinking_end",
    ]
    assert sink.of("thinking_end")[0]["content"] == "hmm"


async def test_tool_events_are_persisted_in_a_run(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("", tool_calls=[("add", {"a": 20, "b": 22})]).reply("42")

    @define_workflow(agent=define_agent(model="fake/echo", tools=[ADD]))
    async def calculator(ctx: ActionContext[None]) -> str:
        return (await (await ctx.harness.session()).prompt("20+22")).text

    result = await flue.run_async(calculator)
    assert result.status == "completed"
    assert result.result == "42"
    tool = result.events_of("tool")
    assert len(tool) == 1
    assert tool[0]["toolCallId"] == "call_1"
    assert tool[0]["runId"] == result.run_id
    assert tool[0]["result"]["content"] == [{"type": "text", "text": "42"}]


# --- the sandbox filesystem -----------------------------------------------------------------------


@pytest.fixture
def fs() -> MemoryFs:
    fs = make_harness().fs
    assert isinstance(fs, MemoryFs)  # the default sandbox's
    return fs


async def test_fs_write_then_read(fs: MemoryFs) -> None:
    await fs.write_file("/workspace/notes.txt", "hello")
    assert await fs.read_file("/workspace/notes.txt") == "hello"
    assert await fs.read_file_bytes("/workspace/notes.txt") == b"hello"
    await fs.write_file("/workspace/notes.txt", b"\x00\xffbytes")
    assert await fs.read_file_bytes("/workspace/notes.txt") == b"\x00\xffbytes"


async def test_fs_write_creates_parent_directories(fs: MemoryFs) -> None:
    await fs.write_file("/data/deep/er/file.json", "{}")
    for folder in ("/data", "/data/deep", "/data/deep/er"):
        assert await fs.exists(folder)
        assert (await fs.stat(folder)).is_directory
    assert await fs.readdir("/data") == ["deep"]


async def test_fs_relative_paths_resolve_against_cwd(fs: MemoryFs) -> None:
    assert fs.cwd == "/workspace"
    await fs.write_file("report.md", "# r")
    assert await fs.read_file("/workspace/report.md") == "# r"
    await fs.write_file("./sub/../sibling.txt", "s")
    assert await fs.exists("/workspace/sibling.txt")
    assert await fs.readdir() == ["report.md", "sibling.txt"]
    await fs.write_file("../outside-cwd.txt", "ok")  # above cwd but inside the root
    assert await fs.read_file("/outside-cwd.txt") == "ok"


async def test_fs_cwd_from_agent_config() -> None:
    fs = make_harness(cwd="/project/app").fs
    assert fs.cwd == "/project/app"
    await fs.write_file("main.py", "print()")
    assert await fs.exists("/project/app/main.py")
    assert (await fs.stat("/project")).is_directory


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/../x", "/workspace/../../x", "a/../../../b", "\x00bad", ""]
)
async def test_fs_paths_escaping_the_root_are_refused(fs: MemoryFs, path: str) -> None:
    with pytest.raises(SandboxPathError):
        await fs.write_file(path, "x")
    with pytest.raises(SandboxPathError):
        await fs.read_file(path)
    with pytest.raises(SandboxPathError):
        await fs.exists(path)


async def test_fs_missing_file(fs: MemoryFs) -> None:
    with pytest.raises(FileNotFoundError):
        await fs.read_file("missing.txt")
    with pytest.raises(FileNotFoundError):
        await fs.stat("missing.txt")
    with pytest.raises(FileNotFoundError):
        await fs.readdir("missing-dir")
    assert await fs.exists("missing.txt") is False


async def test_fs_stat(fs: MemoryFs) -> None:
    await fs.write_file("five.txt", "12345")
    stat = await fs.stat("five.txt")
    assert isinstance(stat, FileStat)
    assert stat.is_file is True
    assert stat.is_directory is False
    assert stat.size == 5
    folder = await fs.stat("/workspace")
    assert (folder.is_file, folder.is_directory) == (False, True)
    await fs.write_file("u.txt", "é")
    assert (await fs.stat("u.txt")).size == 2  # bytes, not characters


async def test_fs_directories_are_not_files(fs: MemoryFs) -> None:
    await fs.mkdir("folder")
    with pytest.raises(IsADirectoryError):
        await fs.read_file("folder")
    with pytest.raises(IsADirectoryError):
        await fs.write_file("folder", "x")
    await fs.write_file("file.txt", "x")
    with pytest.raises(NotADirectoryError):
        await fs.readdir("file.txt")
    with pytest.raises(NotADirectoryError):
        await fs.write_file("file.txt/child", "x")


async def test_fs_readdir_lists_direct_children_sorted(fs: MemoryFs) -> None:
    await fs.write_file("b.txt", "")
    await fs.write_file("a/one.txt", "")
    await fs.write_file("a/two/three.txt", "")
    assert await fs.readdir(".") == ["a", "b.txt"]
    assert await fs.readdir("a") == ["one.txt", "two"]
    assert "workspace" in await fs.readdir("/")


async def test_fs_mkdir(fs: MemoryFs) -> None:
    await fs.mkdir("new")
    assert (await fs.stat("new")).is_directory
    with pytest.raises(FileExistsError):
        await fs.mkdir("new")
    await fs.mkdir("new", recursive=True)  # existing + recursive: fine
    with pytest.raises(FileNotFoundError):
        await fs.mkdir("x/y/z")
    await fs.mkdir("x/y/z", recursive=True)
    assert await fs.exists("x/y")
    await fs.write_file("f.txt", "")
    with pytest.raises(FileExistsError):
        await fs.mkdir("f.txt", recursive=True)


async def test_fs_rm(fs: MemoryFs) -> None:
    await fs.write_file("tree/a.txt", "a")
    await fs.write_file("tree/sub/b.txt", "b")
    await fs.write_file("lone.txt", "l")

    await fs.rm("lone.txt")
    assert not await fs.exists("lone.txt")
    with pytest.raises(FileNotFoundError):
        await fs.rm("lone.txt")
    await fs.rm("lone.txt", force=True)

    with pytest.raises(OSError, match="not empty"):
        await fs.rm("tree")
    assert await fs.exists("tree/sub/b.txt")
    await fs.rm("tree", recursive=True)
    assert not await fs.exists("tree")
    assert not await fs.exists("tree/sub/b.txt")
    assert not await fs.exists("tree/sub")

    await fs.mkdir("empty")
    await fs.rm("empty")
    assert not await fs.exists("empty")


async def test_fs_is_shared_by_the_sessions_of_a_harness() -> None:
    harness = make_harness()
    one, two = await harness.session("one"), await harness.session("two")
    await one.fs.write_file("shared.txt", "from one")
    assert await two.fs.read_file("shared.txt") == "from one"
    assert one.fs is harness.fs
