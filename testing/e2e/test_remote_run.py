"""``flue-actors run NAME --server URL [--header 'K: V']`` as a subprocess against a real
``flue-actors serve`` subprocess: the run's events on stderr as the server streams them, the
result on stdout, and the exit codes of a local ``flue-actors run``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Final

import pytest
from cli.conftest import CLI, LineReader

from flue_actors.testing.messages_server import MessagesServer

from .support import Project, Serve, describe, free_port, marker, record

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

GUARDED: Final = '''\
"""Served only to callers with ``X-Token: secret``; echoes its text."""

from typing import Annotated

from fastapi import Header, HTTPException
from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class Input(BaseModel):
    text: str


@define_workflow(agent=define_agent(model="fake/echo"))
async def guarded(ctx: ActionContext[Input]) -> dict[str, str]:
    ctx.log.info("let in")
    return {"text": ctx.input.text}


async def route(x_token: Annotated[str | None, Header()] = None) -> None:
    if x_token != "secret":
        raise HTTPException(status_code=403, detail="Not allowed.")


async def runs() -> None: ...
'''

BROKEN: Final = """\
from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def broken(ctx: ActionContext[None]) -> None:
    raise RuntimeError("it broke")


async def route() -> None: ...
async def runs() -> None: ...
"""

RUN_ROW: Final = re.compile(r"^run (run_\S+)$")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, flue_messages_server_process: MessagesServer
) -> Iterator[Serve]:
    root = tmp_path_factory.mktemp("remote-run")
    project = Project.create(root, f"sqlite:///{root / 'served.db'}", flue_messages_server_process)
    (root / "workflows" / "guarded.py").write_text(GUARDED, encoding="utf-8")
    (root / "workflows" / "broken.py").write_text(BROKEN, encoding="utf-8")
    serve = Serve(project)
    try:
        serve.start()
        yield serve
    finally:
        serve.kill()


def _server_runs(served: Serve) -> list[str]:
    listing = served.project.ok("runs", "list", "--json", "--limit", "1000")
    return [run["runId"] for run in json.loads(listing.stdout)["runs"]]


def _client_project(served: Serve, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Where the client runs: another folder with a store of its own, which must stay empty
    (the run happens on the server)."""
    root = tmp_path_factory.mktemp("client")
    return Project.create(root, f"sqlite:///{root / 'client.db'}", served.project.api)


def test_runs_on_the_server_and_prints_events_then_the_result(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = _client_project(served, tmp_path_factory)
    text = f"{marker()} summarize remotely"
    result = client.run(
        "run", "summarize", "--server", served.url, "--input", json.dumps({"text": text})
    )
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout) == {"summary": "SUMMARY: " + text[:20]}
    lines = result.stderr.splitlines()
    assert lines[:2] == ["workflow summarize", f"server {served.url}"], describe(result)
    matched = RUN_ROW.match(lines[2])
    assert matched is not None, describe(result)
    assert lines[3:] == ["assistant", "  SUMMARY: " + text[:20], "workflow completed"]
    with served.client() as http:
        assert record(http, matched.group(1))["status"] == "completed"
    assert not (client.root / "client.db").exists()


def test_headers_reach_the_server_and_the_last_value_wins(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = _client_project(served, tmp_path_factory)
    args = ["run", "guarded", "--server", served.url, "--input", '{"text": "hi"}']
    refused = client.run(*args)
    assert refused.returncode == 1, describe(refused)
    assert refused.stdout == ""
    assert "  status: 403" in refused.stderr.splitlines(), describe(refused)
    admitted = client.run(*args, "--header", "X-Token: wrong", "--header", "x-token: secret")
    assert admitted.returncode == 0, describe(admitted)
    assert json.loads(admitted.stdout) == {"text": "hi"}
    assert "info let in" in admitted.stderr.splitlines()


def test_a_failed_run_exits_1_with_its_error(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    result = _client_project(served, tmp_path_factory).run(
        "run", "workflow:broken", "--server", served.url
    )
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert "Workflow failed: it broke" in result.stderr.splitlines(), describe(result)
    assert "Traceback" not in result.stderr


def test_refusals_exit_1_with_the_servers_error_and_start_nothing(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = _client_project(served, tmp_path_factory)
    before = _server_runs(served)
    unknown = client.run("run", "nope", "--server", served.url)
    assert unknown.returncode == 1, describe(unknown)
    assert "  type: workflow_not_found" in unknown.stderr.splitlines(), describe(unknown)
    invalid = client.run("run", "summarize", "--server", served.url, "--input", '{"text": 1}')
    assert invalid.returncode == 1, describe(invalid)
    assert "  type: action_input_validation" in invalid.stderr.splitlines(), describe(invalid)
    not_json = client.run("run", "summarize", "--server", served.url, "--input", "{")
    assert not_json.returncode == 1, describe(not_json)
    assert "  type: invalid_json" in not_json.stderr.splitlines(), describe(not_json)
    assert _server_runs(served) == before


def test_command_line_mistakes_exit_2(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = _client_project(served, tmp_path_factory)
    malformed = client.run("run", "summarize", "--server", served.url, "--header", "no colon")
    assert malformed.returncode == 2, describe(malformed)
    assert "not a header of the form 'Name: value'" in malformed.stderr
    alone = client.run("run", "summarize", "--header", "X-Token: secret")
    assert alone.returncode == 2, describe(alone)
    assert "--header needs --server" in alone.stderr


def test_an_unreachable_server_exits_1(
    served: Serve, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _client_project(served, tmp_path_factory).run("run", "summarize", "--server", url)
    assert result.returncode == 1, describe(result)
    assert f"error: could not reach the server at {url}" in result.stderr, describe(result)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_cancels_the_run_on_the_server(
    served: Serve,
    tmp_path_factory: pytest.TempPathFactory,
    signum: signal.Signals,
    code: int,
) -> None:
    client = _client_project(served, tmp_path_factory)
    text = f"{marker()} [delay=600000] never answered"
    process = subprocess.Popen(
        [*CLI, "run", "summarize", "--server", served.url, "--input", json.dumps({"text": text})],
        cwd=client.root,
        env=client.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        stderr = LineReader(process.stderr)
        started = stderr.wait_for(RUN_ROW, timeout=30)
        assert started is not None, f"no `run run_...` row:\n{stderr.rest(1)}"
        served.project.model_request(text)  # the model call is under way on the server
        process.send_signal(signum)
        returncode = process.wait(timeout=30)
        with process.stdout:
            stdout = process.stdout.read()
        rest = stderr.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert returncode == code, f"exit {returncode}\n{rest}"
    assert stdout == ""
    assert f"{signum.name}: cancelling run {started.group(1)} on the server" in rest, rest
    assert "Traceback" not in rest, rest
    with served.client() as http:
        ended = record(http, started.group(1))
    assert ended["status"] == "errored", ended
    assert ended["error"]["type"] == "run_cancelled", ended
