"""``flue-actors run`` and ``flue-actors runs list/get/events/rebuild/recover`` as subprocesses,
on SQLite and on PostgreSQL, with the README's ``summarize`` on the real Anthropic provider
(answered by the fake Messages API server in another process).

Each store's project also holds a run whose ``flue-actors run`` process was killed (SIGKILL)
while the model was answering: the orphan ``runs recover`` must end once its owner's lease has
expired. Both orphans are made first, so their leases run out while the other tests run.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from flue_actors._runtime.lease import DEFAULT_LEASE_SECONDS
from flue_actors.testing.messages_server import MessagesServer

from .support import Project, describe, drop_schema, marker, postgres_url

STORES: Final = ["sqlite", "postgres"]


@dataclass
class Store:
    project: Project
    orphan: str  # the run whose process was killed
    killed_at: float  # time.monotonic() of the kill
    completed: str = ""  # the run made by `flue-actors run`, once test_run made it
    text: str = ""


def _orphan(project: Project) -> tuple[str, float]:
    text = f"{marker()} [delay=600000] never finished"
    process = project.start("run", "summarize", "--input", json.dumps({"text": text}))
    try:
        project.model_request(text)  # admitted, and the model call is under way
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    killed_at = time.monotonic()
    runs = json.loads(project.ok("runs", "list", "--json").stdout)["runs"]
    assert len(runs) == 1, runs
    assert runs[0]["status"] == "active"
    return str(runs[0]["runId"]), killed_at


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, flue_messages_server_process: MessagesServer
) -> Iterator[dict[str, Store]]:
    schema = "e2e_cli_" + marker()
    made: dict[str, Store] = {}
    try:
        for kind in STORES:
            root: Path = tmp_path_factory.mktemp(f"cli-{kind}")
            url = f"sqlite:///{root / 'runs.db'}" if kind == "sqlite" else postgres_url(schema)
            project = Project.create(root, url, flue_messages_server_process)
            made[kind] = Store(project, *_orphan(project))
        yield made
    finally:
        drop_schema(schema)


@pytest.mark.parametrize("kind", STORES)
def test_run_prints_events_and_the_result(stores: dict[str, Store], kind: str) -> None:
    store = stores[kind]
    store.text = f"{marker()} summarize this for me"
    result = store.project.ok("run", "summarize", "--input", json.dumps({"text": store.text}))
    assert json.loads(result.stdout) == {"summary": "SUMMARY: " + store.text[:20]}
    lines = result.stderr.splitlines()
    assert lines[0] == "workflow summarize", describe(result)
    assert lines[1].startswith("run run_"), describe(result)
    assert lines[-1] == "workflow completed", describe(result)
    store.completed = lines[1].removeprefix("run ")
    assert store.project.model_request(store.text)["body"]["model"] == "claude-haiku-4-5"


@pytest.mark.parametrize("kind", STORES)
def test_runs_list_get_and_events(stores: dict[str, Store], kind: str) -> None:
    store = stores[kind]
    project = store.project
    table = project.ok("runs", "list", "--workflow", "summarize").stdout.splitlines()
    assert table[0].split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert [row.split()[:3] for row in table[1:]] == [
        [store.completed, "summarize", "completed"],
        [store.orphan, "summarize", "active"],
    ]
    completed = project.ok("runs", "list", "--json", "--status", "completed", "--limit", "5")
    assert [run["runId"] for run in json.loads(completed.stdout)["runs"]] == [store.completed]

    record = json.loads(project.ok("runs", "get", store.completed).stdout)
    assert record["status"] == "completed"
    assert record["input"] == {"text": store.text}
    assert record["result"] == {"summary": "SUMMARY: " + store.text[:20]}
    events = [
        json.loads(line)
        for line in project.ok("runs", "events", store.completed).stdout.splitlines()
    ]
    assert events[0]["type"] == "run_start"
    assert events[-1]["type"] == "run_end"
    assert events[-1]["result"] == record["result"]
    assert [event["eventIndex"] for event in events] == list(range(len(events)))
    missing = project.run("runs", "get", "run_01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.returncode == 1, describe(missing)
    assert "type: run_not_found" in missing.stderr


@pytest.mark.parametrize("kind", STORES)
def test_runs_rebuild_refolds_the_same_records(stores: dict[str, Store], kind: str) -> None:
    project = stores[kind].project
    before = project.ok("runs", "list", "--json").stdout
    rebuilt = project.ok("runs", "rebuild")
    assert rebuilt.stderr == "rebuilt 2 run records from the log\n", describe(rebuilt)
    assert project.ok("runs", "list", "--json").stdout == before


@pytest.mark.parametrize("kind", STORES)
def test_runs_recover_end_ends_the_killed_run(stores: dict[str, Store], kind: str) -> None:
    store = stores[kind]
    project = store.project
    # The killed process heartbeat last before it died: its lease is over this much later.
    expires = store.killed_at + DEFAULT_LEASE_SECONDS + 1.0
    time.sleep(max(0.0, expires - time.monotonic()))
    # --end: its workflow would resume (and call the model, which answers this one in 600 s).
    recovered = project.ok("runs", "recover", "--end")
    assert recovered.stdout == store.orphan + "\n", describe(recovered)
    assert recovered.stderr.endswith("\nended 1 orphaned runs\n"), describe(recovered)
    record: dict[str, Any] = json.loads(project.ok("runs", "get", store.orphan).stdout)
    assert record["status"] == "errored"
    assert record["error"]["type"] == "run_interrupted"
    lines = project.ok("runs", "events", store.orphan).stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines[-2:]] == ["run_resume", "run_end"]
    again = project.ok("runs", "recover")
    assert again.stdout == "", describe(again)
    assert again.stderr.endswith("resumed 0 and ended 0 orphaned runs\n"), describe(again)
