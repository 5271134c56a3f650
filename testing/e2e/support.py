"""What the end-to-end tests share: a project folder as a user has it, the environment its
commands run in (the real Anthropic provider, aimed at the fake Messages API server), a
``flue-actors serve`` process, and readers of Flue's HTTP protocol.

Every wait here is bounded and fails with what was seen; readiness is polled (``/healthz``, the
fake server's request log) only where the process under test offers no event to wait on.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
from cli.conftest import CLI

from flue_actors._runtime.ray.environment import loopback_environment
from flue_actors.client._protocol import SseParser
from flue_actors.testing.messages_server import MessagesServer

REPO: Final = Path(__file__).resolve().parents[2]
POSTGRES_URL: Final = os.environ.get(
    "FLUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
FAKE_API_KEY: Final = "sk-ant-fake"
MODEL: Final = "claude-haiku-4-5"  # what workflows/summarize.py asks for, without FLUE_MODEL


T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.05) -> T:
    """``probe()``'s first value that is not None, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def marker() -> str:
    """A token no other request carries, to find a run's model call in the fake server's log."""
    return "m" + secrets.token_hex(4)


def postgres_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


def drop_schema(schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


@dataclass
class Project:
    """A temporary project folder with the README's ``workflows/summarize.py``, and the
    environment its commands run in: the real provider (``FLUE_MODEL`` unset) aimed at the
    fake Messages API server, and the store ``database_url``."""

    root: Path
    database_url: str | None
    api: MessagesServer | None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, database_url: str | None, api: MessagesServer | None) -> Project:
        """``database_url`` None: the default store; ``api`` None: no provider configured."""
        (root / "workflows").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "workflows" / "summarize.py", root / "workflows" / "summarize.py")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUE_", "ANTHROPIC_"))}
        env.update(loopback_environment())
        env.update({"RAY_AUTH_MODE": "disabled", "PYTHONIOENCODING": "utf-8"})
        if api is not None:
            env.update({"ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": FAKE_API_KEY})
        if database_url is not None:
            env["FLUE_DATABASE_URL"] = database_url
        return cls(root, database_url, api, env)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, describe(result)
        return result

    def start(self, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
        """A long-running command in a process group of its own (so a teardown can end what
        it started, Ray's processes included), output to ``log``."""
        sink = (log or self.root / "command.log").open("a", encoding="utf-8")
        try:
            return subprocess.Popen(
                [*CLI, *args],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        finally:
            sink.close()

    def model_request(self, token: str, timeout: float = 30) -> dict[str, Any]:
        """The fake server's logged request whose last user message carries ``token``."""
        api = self.api
        assert api is not None, "this project has no fake Messages API server"

        def find() -> dict[str, Any] | None:
            for entry in api.requests():
                if token in json.dumps(entry["body"]):
                    return entry
            return None

        return eventually(f"a model request carrying {token}", find, timeout)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """``flue-actors serve`` for a project, on a port of its own, with ``args`` after the
    address and workflows options (or exactly ``command``, if given: the words after
    ``flue-actors``); ``start`` returns once it answers ``/healthz``. Restarting keeps the port."""

    def __init__(
        self, project: Project, args: Sequence[str] = (), *, command: Sequence[str] | None = None
    ) -> None:
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = (
            list(command)
            if command is not None
            else [
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workflows",
                "workflows",
                *args,
            ]
        )
        self.log = project.root / "serve.log"
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"--- start {self.starts}\n")
        self.process = process = self.project.start(*self.command, log=self.log)

        def healthy() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(
                    f"flue-actors serve exited with {process.returncode}:\n{self.output()}"
                )
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200 or None
            except httpx.TransportError:
                return None

        eventually(f"flue-actors serve on {self.url}", healthy, timeout, every=0.1)

    def terminate(self, bound: float) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took, failing past ``bound``."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(bound)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"flue-actors serve did not exit within {bound} s of SIGTERM:\n{self.output()}"
            ) from None
        return code, time.monotonic() - began

    def kill(self) -> None:
        """End whatever this serve started (its process group), if anything is left."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=httpx.Timeout(60, connect=5))


# --- reading Flue's protocol -------------------------------------------------------------------


def invoke(http: httpx.Client, text: str, *, wait: bool = False) -> httpx.Response:
    params = {"wait": "result"} if wait else {}
    return http.post("/workflows/summarize", params=params, json={"text": text})


def admitted(http: httpx.Client, text: str) -> str:
    response = invoke(http, text)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"runId"}, body
    run_id: str = body["runId"]
    return run_id


def record(http: httpx.Client, run_id: str) -> dict[str, Any]:
    response = http.get(f"/runs/{run_id}", params={"meta": ""})
    assert response.status_code == 200, response.text
    wire: dict[str, Any] = response.json()
    return wire


def catch_up(http: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every event so far, page by page."""
    events: list[dict[str, Any]] = []
    offset = "-1"
    while True:
        response = http.get(f"/runs/{run_id}", params={"offset": offset})
        assert response.status_code == 200, response.text
        events.extend(response.json())
        next_offset = response.headers["stream-next-offset"]
        if response.headers.get("stream-up-to-date") == "true" or next_offset == offset:
            return events
        offset = next_offset


def long_poll(http: httpx.Client, run_id: str, *, deadline: float = 60) -> list[dict[str, Any]]:
    """Follow the run with ``live=long-poll`` from the start until its stream is closed."""
    events: list[dict[str, Any]] = []
    params = {"offset": "-1", "live": "long-poll"}
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        response = http.get(f"/runs/{run_id}", params=params)
        assert response.status_code in (200, 204), response.text
        if response.status_code == 200:
            events.extend(response.json())
        params["offset"] = response.headers["stream-next-offset"]
        if "stream-cursor" in response.headers:
            params["cursor"] = response.headers["stream-cursor"]
        if response.headers.get("stream-closed") == "true":
            return events
    raise AssertionError(f"run {run_id}: its stream was not closed within {deadline} s")


def sse(http: httpx.Client, run_id: str) -> Iterator[dict[str, Any]]:
    """Follow the run with ``live=sse`` from the start until a control frame closes it."""
    params = {"offset": "-1", "live": "sse"}
    with http.stream("GET", f"/runs/{run_id}", params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream"
        parser = SseParser()
        for line in response.iter_lines():
            frame = parser.feed(line)
            if frame is None:
                continue
            kind, data = frame
            if kind == "data":
                yield from json.loads(data)
            elif kind == "control" and json.loads(data).get("streamClosed"):
                return
    raise AssertionError(f"run {run_id}: the SSE stream ended without streamClosed")


def types(events: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(event["type"]) for event in events]


def ended(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The ``run_end`` that closes ``events`` (checking it is the only one, and last)."""
    assert types(events).count("run_end") == 1, types(events)
    assert events[-1]["type"] == "run_end", types(events)
    return events[-1]


def three_calls_workflow(delay_ms: int | None = None) -> str:
    """The source of ``workflows/three.py``: three model calls in a row on the real provider,
    each answered ``delay_ms`` late by the fake Messages API (the durable-run fault tests')."""
    delay = f" [delay={delay_ms}]" if delay_ms is not None else ""
    return f'''\
"""Three model calls in a row."""

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class Input(BaseModel):
    text: str


agent = define_agent(model="anthropic/claude-haiku-4-5", instructions="Answer briefly.")


@define_workflow(agent=agent)
async def three(ctx: ActionContext[Input]) -> list[str]:
    session = await ctx.harness.session()
    answers = []
    for step in ("one", "two", "three"):
        answers.append((await session.prompt(f"{{step}} {{ctx.input.text}}{delay}")).text)
    return answers


async def route() -> None: ...


async def runs() -> None: ...
'''
