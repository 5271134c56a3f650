"""Fixtures for the ``flue-actors`` CLI suite.

Every test runs the real console script in a subprocess, with a temporary directory as its working
directory holding its own ``workflows/`` folder (:data:`WORKFLOW_SOURCES`). The environment is
explicit: ``FLUE_MODEL=fake/echo`` always, and ``FLUE_DATABASE_URL`` set to a file inside the
project unless a test asks for the default store.

Start-up costs a fraction of a second per invocation, so runs that several tests inspect are made
once per session (:func:`shared`), together with their ``runs get`` / ``runs events`` output.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import pytest

__all__ = [
    "CLI",
    "SHARED_RUNS",
    "WORKFLOW_SOURCES",
    "LineReader",
    "Project",
    "Shared",
    "describe",
    "error_types",
    "make_project",
    "run_id_of",
    "stderr_lines",
]

_REPO: Final = Path(__file__).resolve().parents[2]


def _find_cli() -> list[str]:
    """The ``flue-actors`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "flue-actors"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("flue-actors")
    if found is not None:
        return [found]
    # Not installed as a script: the same entry point, through the interpreter.
    return [sys.executable, "-c", "import sys; from flue_actors._cli import main; sys.exit(main())"]


CLI: Final = _find_cli()

WORKFLOW_SOURCES: Final[Mapping[str, str]] = {
    "summarize": (_REPO / "workflows" / "summarize.py").read_text(encoding="utf-8"),
    "nothing": '''\
"""Takes no input and returns None: nothing on stdout."""

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def nothing(ctx: ActionContext[None]) -> None:
    return None
''',
    "chatty": '''\
"""Logs two lines with ctx.log.info, returns a small object."""

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def chatty(ctx: ActionContext[None]) -> dict[str, bool]:
    ctx.log.info("step one")
    ctx.log.info("step two")
    return {"ok": True}
''',
    "fails": '''\
"""Raises a plain exception while running."""

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def fails(ctx: ActionContext[None]) -> None:
    raise ValueError("it broke")
''',
    "setresult": '''\
"""Returns a set: not a JSON value."""

from typing import Any

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def setresult(ctx: ActionContext[None]) -> Any:
    return {1, 2}
''',
    "hang": '''\
"""Blocks until cancelled."""

import asyncio

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def hang(ctx: ActionContext[None]) -> None:
    await asyncio.Event().wait()
''',
    "noworkflow": '''\
"""A module in the workflows folder that defines no workflow."""

VALUE = 1
''',
    "boom": '''\
"""A module that raises while it is imported."""

raise RuntimeError("boom at import")
''',
}

_RUN_LINE: Final = re.compile(r"^run (run_\S+)$", re.MULTILINE)
_TYPE_LINE: Final = re.compile(r"^\s+type: (\S+)$", re.MULTILINE)


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stderr.splitlines()


def run_id_of(stderr: str) -> str:
    """The run id from the ``run run_...`` row the presenter prints on ``run_start``."""
    match = _RUN_LINE.search(stderr)
    assert match is not None, f"no `run run_...` line on stderr:\n{stderr}"
    return match.group(1)


def error_types(stderr: str) -> list[str]:
    """Every ``  type: <type>`` line's type, in order."""
    return _TYPE_LINE.findall(stderr)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failure message showing the command, its exit code and both streams."""
    return (
        f"$ flue-actors {' '.join(result.args[len(CLI) :])}\n"
        f"exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


@dataclass
class Project:
    """A working directory with a ``workflows/`` folder, and the environment to run the CLI in."""

    root: Path
    env: dict[str, str]

    @property
    def database_url(self) -> str | None:
        return self.env.get("FLUE_DATABASE_URL")

    def command(self, *args: str) -> list[str]:
        return [*CLI, *args]

    def _env(self, env: Mapping[str, str | None] | None) -> dict[str, str]:
        merged = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=cwd or self.root,
            env=self._env(env),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command that must exit 0."""
        result = self.run(*args)
        assert result.returncode == 0, describe(result)
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=self._env(None),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def list_runs(self, *extra: str) -> dict[str, Any]:
        result = self.ok("runs", "list", "--json", *extra)
        assert result.stdout.endswith("\n"), describe(result)
        assert result.stdout.count("\n") == 1, describe(result)
        page = json.loads(result.stdout)
        assert isinstance(page, dict), describe(result)
        return page

    def all_runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.list_runs()["runs"]
        return runs

    def get_run(self, run_id: str) -> dict[str, Any]:
        record = json.loads(self.ok("runs", "get", run_id).stdout)
        assert isinstance(record, dict)
        return record

    def event_lines(self, run_id: str, *extra: str) -> list[str]:
        return self.ok("runs", "events", run_id, *extra).stdout.splitlines()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUE_")}
    env["FLUE_MODEL"] = "fake/echo"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def make_project(
    root: Path,
    *,
    workflows: Sequence[str] | None = None,
    folder: str = "workflows",
    database: bool = True,
) -> Project:
    """A project under ``root``: the named workflows (default: all) in ``root/folder``, and
    ``FLUE_DATABASE_URL`` naming ``root/runs.db`` unless ``database`` is false (the default
    store)."""
    directory = root / folder
    directory.mkdir(parents=True, exist_ok=True)
    for name in workflows if workflows is not None else WORKFLOW_SOURCES:
        (directory / f"{name}.py").write_text(WORKFLOW_SOURCES[name], encoding="utf-8")
    env = _base_env()
    if database:
        env["FLUE_DATABASE_URL"] = f"sqlite:///{(root / 'runs.db').resolve()}"
    return Project(root=root, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


class LineReader:
    """Reads a pipe line by line on a thread, so the test can wait with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with stream:  # closed at EOF (the process ended): no pipe is left for the GC to find
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """The first line (from here on) matching ``pattern``; None at EOF or the deadline."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.seen.append(line)
            match = pattern.match(line.rstrip("\n"))
            if match is not None:
                return match
        return None

    def rest(self, timeout: float = 10) -> str:
        """Everything read so far plus the remainder up to EOF."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


@dataclass
class Shared:
    """Runs made once per session in one project: each ``run`` command's result, its run id,
    and the ``runs get`` / ``runs events`` output of every run."""

    project: Project
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)

    def result(self, key: str) -> subprocess.CompletedProcess[str]:
        return self.results[key]

    def run_id(self, key: str) -> str:
        assert key in self.run_ids, f"{key}: no run id\n{describe(self.results[key])}"
        return self.run_ids[key]


# key -> the ``run`` arguments; made in this order, so a listing shows them reversed.
SHARED_RUNS: Final[Mapping[str, Sequence[str]]] = {
    "summarize": ("run", "summarize", "--input", '{"text":"hello"}'),
    "nothing": ("run", "nothing"),
    "chatty": ("run", "chatty"),
    "fails": ("run", "fails"),
    "setresult": ("run", "setresult"),
    "unicode": ("run", "summarize", "--input", '{"text":"héllo\\nwörld ☃"}'),
}


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    project = make_project(tmp_path_factory.mktemp("shared"))
    made = Shared(project=project)
    for key, args in SHARED_RUNS.items():
        result = project.run(*args)
        made.results[key] = result
        match = _RUN_LINE.search(result.stderr)
        if match is not None:
            made.run_ids[key] = match.group(1)
            made.order.append(match.group(1))
    # The runs above go one by one (their order is the listing's); the reads of what they left
    # change nothing, so they overlap (each is mostly an interpreter starting).
    with ThreadPoolExecutor(max_workers=3) as pool:
        gets = {run_id: pool.submit(project.run, "runs", "get", run_id) for run_id in made.order}
        reads = {
            run_id: pool.submit(project.run, "runs", "events", run_id) for run_id in made.order
        }
        for run_id in made.order:
            get, events = gets[run_id].result(), reads[run_id].result()
            if get.returncode == 0:
                made.records[run_id] = json.loads(get.stdout)
            if events.returncode == 0:
                made.events[run_id] = events.stdout.splitlines()
    return made
