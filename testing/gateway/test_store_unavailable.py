"""A run store that cannot be reached (a PostgreSQL server that is not there) answers Flue's
``run_store_unavailable`` envelope, with 503 and ``Retry-After`` (Flue's 501 means a runtime
without a store, which cannot be built here), never leaking where the store is; the CLI reports
the same type, with the reason, and exits 1."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from typing import Final

import httpx
import pytest
import pytest_asyncio
from cli.conftest import CLI

from flue_actors import ModelRegistry, Runtime
from flue_actors.gateway import create_app
from flue_actors.store._postgres import PostgresEventStore

from .conftest import Controls, asgi_client, assert_error, build_workflows

# Port 9 (discard) on loopback: nothing listens there, so every connection is refused at once.
UNREACHABLE: Final = "postgresql://flue:s3cret@127.0.0.1:9/test"


@pytest_asyncio.fixture
async def outage() -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(
        build_workflows(Controls()),
        store=PostgresEventStore(UNREACHABLE, connect_timeout=2),
        models=ModelRegistry(override="fake/echo"),
        env={},
    )
    try:
        async with asgi_client(create_app(runtime)) as client:
            yield client
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/workflows/echo?wait=result"),
        ("POST", "/workflows/echo"),
        ("GET", "/runs/run_01M86AZC2TTN344AA5W93H9KF0"),
        ("GET", "/runs/run_01M86AZC2TTN344AA5W93H9KF0?meta"),
        ("GET", "/runs?workflow=echo"),
    ],
)
async def test_an_unreachable_store_answers_run_store_unavailable(
    outage: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await outage.request(method, path, json={"text": "hi"} if method == "POST" else None)
    assert_error(
        response,
        503,
        "run_store_unavailable",
        message="Run history is not available in this runtime.",
        details="The run store cannot be reached; retry shortly.",
    )
    assert response.headers["retry-after"] == "1"
    assert "127.0.0.1:9" not in response.text
    assert "s3cret" not in response.text


def test_the_cli_reports_an_unreachable_store_with_its_reason() -> None:
    result = subprocess.run(
        [*CLI, "--database-url", UNREACHABLE, "runs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "error: Run history is not available in this runtime.",
        "  type: run_store_unavailable",
    ], result.stderr
    assert "postgresql://flue:***@127.0.0.1:9/test" in result.stderr
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
