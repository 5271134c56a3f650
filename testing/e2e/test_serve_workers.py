"""``flue-actors serve --workers 2``: every route holds whichever worker a request lands on.

The workers accept from one listening socket, so which one takes a connection is the kernel's
choice. The tests make it theirs: while every worker but one is stopped (SIGSTOP), a new
connection can only be accepted by that one, and an HTTP client keeps its connection (and so
its worker) for the requests that follow. A run is thus admitted on one worker and read, waited
on, invoked again by key, and cancelled through the other, on SQLite (whose live reads hear the
other process's commits through inotify) and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from flue_actors.testing.messages_server import MessagesServer

from .conftest import _store as store_url
from .support import (
    Project,
    Serve,
    admitted,
    catch_up,
    drop_schema,
    ended,
    eventually,
    long_poll,
    marker,
    record,
    sse,
    types,
)

_WORKERS = re.compile(r"\(2 workers: pids (\d+), (\d+);")
# A stop drains runs that need 1 s more of model time (the grace is 10 s).
SIGTERM_BOUND = 15.0


class Served:
    def __init__(self, project: Project, serve: Serve) -> None:
        self.project = project
        self.serve = serve
        self.workers: tuple[int, int] = (0, 0)

    def start(self) -> None:
        self.serve.start()
        # /healthz answers once one worker listens; the banner once both do.
        found = eventually(
            "the banner naming both workers",
            lambda: _WORKERS.search(self.serve.output().rpartition("--- start")[2]),
            30,
        )
        self.workers = (int(found[1]), int(found[2]))

    @contextlib.contextmanager
    def only(self, worker: int) -> Iterator[None]:
        """Every other worker stopped: new connections are accepted by ``worker``."""
        others = [pid for pid in self.workers if pid != worker]
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        for pid in others:
            eventually(f"worker {pid} to stop", partial(_stopped, pid), 5)
        try:
            yield
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def client_of(self, worker: int) -> Iterator[httpx.Client]:
        """A client whose connection ``worker`` accepted (and keeps, while it is used)."""
        with self.serve.client() as http:
            with self.only(worker):
                assert http.get("/healthz").status_code == 200
            yield http


def _stopped(pid: int) -> bool | None:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T" or None


@pytest.fixture(scope="class")
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    flue_messages_server_process: MessagesServer,
) -> Iterator[Served]:
    store = request.cls.store
    root = tmp_path_factory.mktemp(f"workers-{store}")
    database_url, schema = store_url(store, root)
    project = Project.create(root, database_url, flue_messages_server_process)
    # A short lease, so that orphans are taken over soon after a crash.
    serve = Serve(project, ["--workers", "2", "--lease-seconds", "5", "--sweep-seconds", "0.5"])
    try:
        result = Served(project, serve)
        result.start()
        yield result
    finally:
        serve.kill()
        if schema is not None:
            drop_schema(schema)


class WorkersScenarios:
    store: ClassVar[str]

    def test_a_run_on_one_worker_is_followed_live_on_the_other(self, served: Served) -> None:
        a, b = served.workers
        text = f"{marker()} [delay=1000] followed from the other worker"
        with served.only(a), served.serve.client() as http:
            run_id = admitted(http, text)
        with (
            served.client_of(b) as sse_http,
            served.client_of(b) as poll_http,
            ThreadPoolExecutor(2) as pool,
        ):
            began = time.monotonic()
            streamed = pool.submit(lambda: list(sse(sse_http, run_id)))
            polled = pool.submit(long_poll, poll_http, run_id)
            sse_events, polled_events = streamed.result(30), polled.result(30)
            followed = time.monotonic() - began
            caught_up = catch_up(poll_http, run_id)
            wire = record(poll_http, run_id)
        assert sse_events == polled_events == caught_up
        assert types(caught_up)[0] == "run_start"
        assert ended(caught_up)["isError"] is False
        assert wire["status"] == "completed"
        # Woken by the owner's commits: a reader that missed them would wait 30 s.
        assert followed < 10, followed

    def test_idempotency_keys_and_waits_across_workers(self, served: Served) -> None:
        a, b = served.workers
        text, key = f"{marker()} [delay=500] keyed", "key-" + secrets.token_hex(4)
        headers = {"idempotency-key": key}
        body = {"text": text}
        with served.only(a), served.serve.client() as http:
            first = http.post("/workflows/summarize", json=body, headers=headers)
        assert first.status_code == 202, first.text
        run_id = first.json()["runId"]
        with served.client_of(b) as http:
            waited = http.post(
                "/workflows/summarize", params={"wait": "result"}, json=body, headers=headers
            )
            conflict = http.post("/workflows/summarize", json={"text": "other"}, headers=headers)
        assert waited.status_code == 200, waited.text
        assert waited.json() == {"result": {"summary": "SUMMARY: " + text[:20]}, "runId": run_id}
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["type"] == "idempotency_key_conflict"

        # One key sent to both workers at once: the store admits one run.
        raced = {"idempotency-key": "race-" + secrets.token_hex(4)}
        with (
            served.client_of(a) as on_a,
            served.client_of(b) as on_b,
            ThreadPoolExecutor(2) as pool,
        ):
            answers = list(
                pool.map(
                    lambda http: http.post(
                        "/workflows/summarize", json={"text": "raced"}, headers=raced
                    ),
                    (on_a, on_b),
                )
            )
            listed = on_b.get("/runs", params={"workflow": "summarize", "limit": 1000})
        assert [answer.status_code for answer in answers] == [202, 202]
        [raced_id] = {answer.json()["runId"] for answer in answers}
        assert [run["runId"] for run in listed.json()["runs"]].count(raced_id) == 1

    def test_cancel_through_the_other_worker(self, served: Served) -> None:
        a, b = served.workers
        text = f"{marker()} [delay=60000] never answered in time"
        with served.only(a), served.serve.client() as http:
            run_id = admitted(http, text)
        served.project.model_request(text)  # worker a's model call is under way
        with served.client_of(b) as http:
            cancelled = http.post(f"/runs/{run_id}/cancel")
            events = long_poll(http, run_id, deadline=10)
            wire = record(http, run_id)
            again = http.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        assert ended(events)["error"]["type"] == "run_cancelled"
        assert wire["status"] == "errored"
        assert again.status_code == 409, again.text
        # Worker a stops the run it hosts (its model call, 60 s long) rather than finish it
        # for nobody: its abort is the write the log refuses.
        eventually(
            "worker a to stop the run",
            lambda: f"run {run_id}: another writer ended it" in served.serve.output() or None,
            10,
        )

    def test_a_dead_worker_stops_the_server_and_its_runs_resume_once(self, served: Served) -> None:
        a, b = served.workers
        # Answered well after the kill even when the four requests arrive over a second or
        # more (a loaded machine): a run whose answer came first would end without a resume.
        texts = [f"{marker()} [delay=3000] orphaned {i}" for i in range(4)]
        with served.only(a), served.serve.client() as http:
            runs = [admitted(http, text) for text in texts]
        for text in texts:
            served.project.model_request(text)
        os.kill(a, signal.SIGKILL)  # its runs in flight
        process = served.serve.process
        assert process is not None
        assert process.wait(SIGTERM_BOUND) == 1, served.serve.output()
        assert f"error: worker {a} exited while serving" in served.serve.output()
        assert not Path(f"/proc/{b}").exists(), "the other worker outlived the server"

        served.start()
        with served.serve.client() as http:
            logs = {run_id: long_poll(http, run_id, deadline=30) for run_id in runs}
            records = {run_id: record(http, run_id) for run_id in runs}
        api = served.project.api
        assert api is not None
        asked = [json.dumps(entry["body"]) for entry in api.requests()]
        output = served.serve.output()
        for text, run_id in zip(texts, runs, strict=True):
            # Both new workers sweep the store; each orphan was taken over by one of them.
            assert types(logs[run_id]).count("run_resume") == 1, types(logs[run_id])
            assert records[run_id]["status"] == "completed", records[run_id]
            # Asked before the crash, and once after.
            assert sum(text in body for body in asked) == 2, output

    def test_sigterm_stops_every_worker(self, served: Served) -> None:
        text = f"{marker()} [delay=1000] in flight at SIGTERM"
        with served.serve.client() as http:
            run_id = admitted(http, text)
        served.project.model_request(text)
        code, took = served.serve.terminate(SIGTERM_BOUND)
        assert code == 0, f"exit {code} after {took:.1f} s:\n{served.serve.output()}"
        for pid in served.workers:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the server"
        shown = served.project.ok("runs", "get", run_id)
        assert json.loads(shown.stdout)["status"] == "completed"


class TestSqliteWorkers(WorkersScenarios):
    store = "sqlite"


class TestPostgresWorkers(WorkersScenarios):
    store = "postgres"
