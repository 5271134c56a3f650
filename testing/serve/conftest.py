"""Fixtures for ``flue-actors serve`` run as a subprocess on a free 127.0.0.1 port.

Projects come from the CLI suite's :func:`make_project` (its console script, environment and
``FLUE_MODEL=fake/echo``); this folder adds workflows exposed over HTTP (``route`` and ``runs``
exports), one of which blocks until cancelled, so that runs stay in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest
from cli.conftest import LineReader, Project, make_project

__all__ = [
    "BLOCKER",
    "POSTGRES_URL",
    "Served",
    "free_port",
    "serve_project",
    "start_serve",
]

POSTGRES_URL: Final = os.environ.get(
    "FLUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

BLOCKER: Final = '''\
"""Blocks until cancelled; invocable and readable over HTTP. Not resumed after a crash (it
would block again): its orphans end run_interrupted."""

import asyncio

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"), recovery="fail")
async def blocker(ctx: ActionContext[None]) -> None:
    await asyncio.Event().wait()


async def route() -> None: ...


async def runs() -> None: ...
'''

_SERVING: Final = re.compile(r"^serving .* on (\S+):(\d+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Served:
    """One ``flue-actors serve`` process and how to reach it."""

    process: subprocess.Popen[str]
    url: str
    stderr: LineReader
    # serve writes nothing there; drained all the same, so the pipe is closed when it ends
    stdout: LineReader | None = None

    def kill(self) -> None:
        """``kill -9``: no shutdown, no last heartbeat, nothing flushed."""
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        return self.stderr.rest(timeout=1)


def start_serve(project: Project, *options: str, timeout: float = 30) -> Served:
    """Start ``flue-actors serve`` on a free port; returns once it listens."""
    port = free_port()
    process = project.start("serve", "--host", "127.0.0.1", "--port", str(port), *options)
    assert process.stderr is not None
    assert process.stdout is not None
    reader = LineReader(process.stderr)
    output = LineReader(process.stdout)
    if reader.wait_for(_SERVING, timeout) is None:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve did not start listening within {timeout} s:\n{reader.rest()}")
    return Served(process=process, url=f"http://127.0.0.1:{port}", stderr=reader, stdout=output)


def serve_project(root: Path, database_url: str | None = None) -> Project:
    """A project with the blocker and summarize workflows; ``database_url`` replaces the
    default SQLite file (for PostgreSQL)."""
    project = make_project(root, workflows=["summarize"])
    (root / "workflows" / "blocker.py").write_text(BLOCKER, encoding="utf-8")
    if database_url is not None:
        project.env["FLUE_DATABASE_URL"] = database_url
    return project


@contextlib.contextmanager
def stopped_at_exit(served: Served) -> Iterator[Served]:
    try:
        yield served
    finally:
        if served.process.poll() is None:
            served.kill()


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store of the test's project: a SQLite file in it, or a schema of the test's own on
    the local PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    schema = "flue_serve_" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:20]
    yield f"{POSTGRES_URL}?schema={schema}"
    asyncio.run(_drop_schema(schema))


async def invoke_many(client: httpx.AsyncClient, workflow: str, count: int) -> list[str]:
    """Admit ``count`` runs (202 each), 16 requests at a time; their run ids."""
    gate = asyncio.Semaphore(16)

    async def one() -> str:
        async with gate:
            response = await client.post(f"/workflows/{workflow}")
        assert response.status_code == 202, response.text
        run_id: str = response.json()["runId"]
        return run_id

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def run_record(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/runs/{run_id}", params={"meta": ""})
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record
