"""Fixtures for the HTTP gateway suite (reference 1.8, 1.15-1.17, 1.23, and the documented
deviations from Flue).

Every test gets a fresh :class:`Runtime` on an in-memory SQLite log, with the step clock, counted
ids and the ``fake/echo`` model, serving the workflows :func:`build_workflows` defines: one per
exposure case (``route`` and/or ``runs`` export, or neither), plus workflows that block, fail,
log a given number of lines or take no input. Workflows that must stay in flight wait on
:class:`Controls`, which the test drives.

The application is built with short live timeouts (:data:`LONG_POLL_SECONDS`,
:data:`HEARTBEAT_SECONDS`) so that long-poll and SSE tests finish quickly. In-process tests talk to
it through ``httpx.ASGITransport``; live tests (``live_server``) through a real uvicorn server on
127.0.0.1, running as a task in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, Field

from flue_actors import (
    ActionContext,
    ModelRegistry,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors._runtime import DiscoveredWorkflow, WorkflowRegistry
from flue_actors._runtime.discovery import load_workflow_module
from flue_actors.errors import OperationFailedError
from flue_actors.gateway import create_app

__all__ = [
    "CURSOR_EPOCH_MS",
    "HEARTBEAT_SECONDS",
    "LONG_POLL_SECONDS",
    "MAX_BODY_BYTES",
    "SECURITY_HEADERS",
    "AppFactory",
    "Controls",
    "LiveServer",
    "SseReader",
    "assert_error",
    "assert_security_headers",
    "build_workflows",
    "current_cursor",
    "expected_etag",
    "make_runtime",
    "offset_of",
    "run_ids",
    "shutdown",
    "start_run",
    "wait_for_length",
    "wait_until",
]

LONG_POLL_SECONDS: Final = 0.5
HEARTBEAT_SECONDS: Final = 0.2
MAX_BODY_BYTES: Final = 4096
CURSOR_EPOCH_MS: Final = 1728432000000
SECURITY_HEADERS: Final = {
    "x-content-type-options": "nosniff",
    "cross-origin-resource-policy": "cross-origin",
}
SUMMARIZE_MODULE: Final = Path(__file__).resolve().parents[2] / "workflows" / "summarize.py"

AGENT = define_agent(model="fake/echo")


class TextInput(BaseModel):
    text: str


class CountInput(BaseModel):
    count: int = Field(ge=0, le=500)


@dataclass
class Controls:
    """What the test uses to drive, and observe, the workflows of one runtime."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    """``blocking`` runs wait for this."""
    feed: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    """``paced`` runs log every line put here and end on ``None``."""
    route_calls: list[str] = field(default_factory=list)
    """Methods the ``counted`` workflow's ``route`` dependency was called for."""
    runs_calls: list[str] = field(default_factory=list)
    """``METHOD path`` of every request the ``counted`` workflow's ``runs`` dependency saw."""
    list_calls: int = 0
    """Calls of the application's ``list_runs`` dependency (when a test installs one)."""


async def allow() -> None:
    """A ``route``/``runs`` dependency that lets every request through."""


async def deny_without_header(x_allow: Annotated[str | None, Header()] = None) -> None:
    """Denies (FastAPI's own 403) unless the request carries ``X-Allow: yes``."""
    if x_allow != "yes":
        raise HTTPException(status_code=403, detail="Not allowed.")


def build_workflows(controls: Controls) -> WorkflowRegistry:
    """The suite's workflows, by name:

    ========== ===== ==== =====================================================================
    name       route runs behaviour
    ========== ===== ==== =====================================================================
    summarize  yes   yes  ``workflows/summarize.py``, discovered from its file (echo model)
    echo       yes   yes  input ``{text}``, returns ``{"text": text}``
    none       yes   yes  no input schema, returns ``None``
    logger     yes   yes  input ``{count}``, logs ``line 0`` .. ``line count-1``, returns count
    failing    yes   yes  raises ``RuntimeError("boom")``
    typed_fail yes   yes  raises ``OperationFailedError`` (type ``operation_failed``)
    blocking   yes   yes  logs ``waiting``, waits for ``controls.release``, logs ``released``
    paced      yes   yes  logs every line fed to ``controls.feed``, ends on ``None``
    routed     yes   no   returns ``"routed"``
    readable   no    yes  returns ``"readable"``
    hidden     no    no   returns ``"hidden"``
    guarded    403   yes  ``route`` denies unless ``X-Allow: yes``
    private    yes   403  ``runs`` denies unless ``X-Allow: yes``
    counted    count count both dependencies record their calls in ``controls``
    ========== ===== ==== =====================================================================
    """

    async def echo(ctx: ActionContext[TextInput]) -> dict[str, str]:
        return {"text": ctx.input.text}

    async def none(ctx: ActionContext[None]) -> None:
        return None

    async def logger(ctx: ActionContext[CountInput]) -> int:
        for i in range(ctx.input.count):
            ctx.log.info(f"line {i}")
        return ctx.input.count

    async def failing(ctx: ActionContext[None]) -> None:
        raise RuntimeError("boom")

    async def typed_fail(ctx: ActionContext[None]) -> None:
        raise OperationFailedError(kind="prompt", reason="the model refused")

    async def blocking(ctx: ActionContext[None]) -> dict[str, bool]:
        ctx.log.info("waiting")
        await controls.release.wait()
        ctx.log.info("released")
        return {"released": True}

    async def paced(ctx: ActionContext[None]) -> str:
        while (line := await controls.feed.get()) is not None:
            ctx.log.info(line)
        return "fed"

    def returning(value: str) -> Callable[[ActionContext[None]], Any]:
        async def run(ctx: ActionContext[None]) -> str:
            return value

        return run

    async def counted_route(request: Request) -> None:
        controls.route_calls.append(request.method)

    async def counted_runs(request: Request) -> None:
        controls.runs_calls.append(f"{request.method} {request.url.path}")

    def entry(
        name: str,
        run: Callable[[ActionContext[Any]], Any],
        *,
        input: type[BaseModel] | None = None,
        route: Callable[..., Any] | None = allow,
        runs: Callable[..., Any] | None = allow,
    ) -> DiscoveredWorkflow:
        if input is None:
            definition = define_workflow(agent=AGENT, run=run)
        else:
            definition = define_workflow(agent=AGENT, input=input, run=run)
        return DiscoveredWorkflow(name=name, definition=definition, route=route, runs=runs)

    entries = [
        load_workflow_module(SUMMARIZE_MODULE),
        entry("echo", echo, input=TextInput),
        entry("none", none),
        entry("logger", logger, input=CountInput),
        entry("failing", failing),
        entry("typed_fail", typed_fail),
        entry("blocking", blocking),
        entry("paced", paced),
        entry("routed", returning("routed"), runs=None),
        entry("readable", returning("readable"), route=None),
        entry("hidden", returning("hidden"), route=None, runs=None),
        entry("guarded", returning("guarded"), route=deny_without_header),
        entry("private", returning("private"), runs=deny_without_header),
        entry("counted", returning("counted"), route=counted_route, runs=counted_runs),
    ]
    return WorkflowRegistry.from_definitions({workflow.name: workflow for workflow in entries})


def make_runtime(controls: Controls) -> Runtime:
    return Runtime(
        build_workflows(controls),
        store=SqliteEventStore(":memory:"),
        models=ModelRegistry(override="fake/echo"),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )


async def shutdown(runtime: Runtime, controls: Controls) -> None:
    """Let every run still in flight end (released, fed its end, or cancelled), then close."""
    controls.release.set()
    controls.feed.put_nowait(None)
    for run in (await runtime.list_runs(status="active", limit=1000)).runs:
        await runtime.cancel(run.run_id)
    await asyncio.wait_for(runtime.close(), timeout=10)


@pytest.fixture
def controls() -> Controls:
    return Controls()


@pytest_asyncio.fixture
async def runtime(controls: Controls) -> AsyncIterator[Runtime]:
    opened = make_runtime(controls)
    try:
        yield opened
    finally:
        await shutdown(opened, controls)


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(runtime: Runtime) -> AppFactory:
    """``create_app`` over the test's runtime with the suite's short timeouts; keyword
    arguments override them (``list_runs=...``, ``max_body_bytes=...``)."""

    def build(**overrides: Any) -> FastAPI:
        options: dict[str, Any] = {
            "long_poll_seconds": LONG_POLL_SECONDS,
            "heartbeat_seconds": HEARTBEAT_SECONDS,
            "max_body_bytes": MAX_BODY_BYTES,
            **overrides,
        }
        return create_app(runtime, **options)

    return build


@pytest.fixture
def app(make_app: AppFactory) -> FastAPI:
    return make_app()


def asgi_client(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
        base_url="http://gateway.test",
    )


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """In-process client. An unexpected exception in the app answers 500 ``internal_error``
    and is logged (pytest shows the log with the failure); transport errors still raise."""
    async with asgi_client(app) as opened:
        yield opened


# --- A real server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, **options: Any) -> httpx.AsyncClient:
        """A client for this server; never through a proxy, whatever the environment says."""
        return httpx.AsyncClient(base_url=self.base_url, trust_env=False, **options)


@pytest_asyncio.fixture
async def live_server(app: FastAPI) -> AsyncIterator[LiveServer]:
    """The application on a real uvicorn server on 127.0.0.1 (a free port chosen by the OS), as
    a task of the test's event loop; stopped at teardown, before the runtime closes."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn stopped before it started")
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer("127.0.0.1", port, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


class SseReader:
    """Splits a ``text/event-stream`` body into frames (each ending with its blank line)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._buffer = ""
        self.ended = False

    async def next_frame(self, timeout: float = 3.0) -> str | None:
        """The next frame, or ``None`` once the body has ended (with nothing left over)."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no SSE frame within {timeout} s; buffered {self._buffer!r}"
            try:
                chunk = await asyncio.wait_for(anext(self._chunks), remaining)
            except StopAsyncIteration:
                self.ended = True
                assert self._buffer == "", f"body ended inside a frame: {self._buffer!r}"
                return None
            self._buffer += chunk
        frame, self._buffer = self._buffer.split("\n\n", 1)
        return frame + "\n\n"


# --- Helpers ---------------------------------------------------------------------------------


def offset_of(seq: int) -> str:
    """The wire offset of the event at sequence ``seq`` (``-1``: before the first)."""
    return "-1" if seq < 0 else f"{0:016d}_{seq:016d}"


def expected_etag(run_id: str, start: str, end: str, *, closed: bool) -> str:
    path = base64.b64encode(f"runs/{run_id}".encode()).decode("ascii")
    return f'"{path}:{start}:{end}{":c" if closed else ""}"'


def current_cursor(runtime: Runtime) -> int:
    """The long-poll cursor interval of the runtime's clock now."""
    return (runtime.clock.now_ms() - CURSOR_EPOCH_MS) // 20_000


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


def assert_error(
    response: httpx.Response,
    status: int,
    type: str,
    *,
    message: str | None = None,
    details: str | None = None,
) -> dict[str, Any]:
    """``response`` is Flue's error envelope with ``status`` and ``type`` (and the given message
    and details), with the headers every error response carries; returns the ``error`` object."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type") == "application/json", dict(response.headers)
    assert_security_headers(response)
    body = response.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    assert error["type"] == type, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert isinstance(error["details"], str), error
    assert "dev" not in error, error  # developer hints only in dev mode
    if message is not None:
        assert error["message"] == message, error
    if details is not None:
        assert error["details"] == details, error
    return error


async def run_ids(runtime: Runtime) -> list[str]:
    """Every run the store knows, newest first."""
    return [run.run_id for run in (await runtime.list_runs(limit=1000)).runs]


async def start_run(client: httpx.AsyncClient, name: str, input: Any = None) -> str:
    """Admit a run through the gateway (202) and return its id."""
    if input is None:
        response = await client.post(f"/workflows/{name}")
    else:
        response = await client.post(f"/workflows/{name}", json=input)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["runId"]
    return run_id


async def wait_for_length(runtime: Runtime, run_id: str, length: int, timeout: float = 5) -> None:
    """Wait until the run's stream holds at least ``length`` events."""
    deadline = time.monotonic() + timeout
    while True:
        meta = await runtime.stream_meta(run_id)
        if meta is not None and meta.length >= length:
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"stream of {run_id} never reached {length} events ({meta})"
        await runtime.wait_for_events(
            run_id, length=meta.length if meta else 0, timeout=min(remaining, 0.5)
        )


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll ``condition`` every few milliseconds; the seconds it took to hold."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"condition not met within {timeout} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - start
