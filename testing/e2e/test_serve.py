"""``flue-actors serve`` end to end, in every deployment the README describes: SQLite and
PostgreSQL, each with the local backend and with Ray (a private instance the server starts, and
``--address`` of a running cluster). The server is a subprocess; the workflow is the README's
``summarize`` on ``anthropic/claude-haiku-4-5`` through the real provider, answered by the fake
Messages API server in another process.

Each class is one deployment, served once for all its tests, which run in order: invoke and
wait, read every way, list, cancel, then SIGTERM and restart.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

from .conftest import Deployment
from .support import (
    FAKE_API_KEY,
    MODEL,
    admitted,
    catch_up,
    ended,
    eventually,
    invoke,
    long_poll,
    marker,
    record,
    sse,
    types,
)

# SIGTERM with no request waiting: the server drains (a run in flight here takes 1.5 s of
# model time) and exits. Generous for a loaded 2-core machine and a Ray instance to stop.
SIGTERM_BOUND = 20.0
# A run in flight at SIGTERM ends within this after the restart: at once if its owner
# finished it, else by recovery (the lease plus the sweep interval, at most 30 s by default).
RECOVERY_BOUND = 45.0
EXIT_CODES = {0, 128 + signal.SIGTERM, -signal.SIGTERM}


def _summary(text: str) -> str:
    return "SUMMARY: " + text[:20]


class ServeScenarios:
    """The scenarios every deployment must pass (not collected itself: no ``Test`` prefix)."""

    store: ClassVar[str]
    backend: ClassVar[str]
    restarts: ClassVar[bool] = True
    restarts_elsewhere: ClassVar[str] = ""

    def test_wait_result_runs_the_real_provider(self, deployment: Deployment) -> None:
        text = f"{marker()} a long document to summarize"
        with deployment.serve.client() as http:
            response = invoke(http, text, wait=True)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body == {"result": {"summary": _summary(text)}, "runId": body["runId"]}
        call = deployment.project.model_request(text)
        assert call["method"] == "POST"
        assert call["path"] == "/v1/messages"
        headers = call["headers"]
        sent_key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        assert sent_key == FAKE_API_KEY
        assert call["body"]["model"] == MODEL
        assert call["body"]["stream"] is True
        assert call["body"]["messages"][-1]["content"][-1]["text"] == text
        with deployment.serve.client() as http:
            deployment.records[body["runId"]] = record(http, body["runId"])

    def test_admitted_run_reads_the_same_every_way(self, deployment: Deployment) -> None:
        text = f"{marker()} [delay=400] read me"
        with deployment.serve.client() as http:
            run_id = admitted(http, text)
        # Live readers from the start, while the model is still answering.
        with (
            ThreadPoolExecutor(2) as pool,
            deployment.serve.client() as sse_http,
            deployment.serve.client() as poll_http,
        ):
            streamed = pool.submit(lambda: list(sse(sse_http, run_id)))
            polled = pool.submit(long_poll, poll_http, run_id)
            sse_events, polled_events = streamed.result(60), polled.result(60)
        with deployment.serve.client() as http:
            caught_up = catch_up(http, run_id)
            wire = record(http, run_id)
            tail = http.get(f"/runs/{run_id}", params={"offset": "-1", "tail": "1"})
            head = http.head(f"/runs/{run_id}")

        assert sse_events == polled_events == caught_up
        assert types(caught_up)[0] == "run_start"
        assert "operation_start" in types(caught_up)
        assert [event["eventIndex"] for event in caught_up] == list(range(len(caught_up)))
        end = ended(caught_up)
        assert end["isError"] is False
        assert end["result"] == {"summary": _summary(text)}
        assert wire["runId"] == run_id
        assert wire["workflowName"] == "summarize"
        assert wire["status"] == "completed"
        assert wire["input"] == {"text": text}
        assert wire["result"] == {"summary": _summary(text)}
        assert tail.status_code == 200
        assert types(tail.json()) == ["run_end"]
        assert head.status_code == 200
        assert head.headers["stream-closed"] == "true"
        deployment.records[run_id] = wire

    def test_listing_shows_the_runs_newest_first(self, deployment: Deployment) -> None:
        with deployment.serve.client() as http:
            response = http.get("/runs", params={"workflow": "summarize"})
        assert response.status_code == 200, response.text
        listed = [run["runId"] for run in response.json()["runs"]]
        ours = list(deployment.records)
        assert [run_id for run_id in listed if run_id in ours] == ours[::-1]
        assert set(listed) == set(ours)  # a store of its own: nothing else in it

    def test_cancel_ends_a_slow_run(self, deployment: Deployment) -> None:
        text = f"{marker()} [delay=60000] never answered in time"
        with deployment.serve.client() as http:
            run_id = admitted(http, text)
            deployment.project.model_request(text)  # the model call is under way
            cancelled = http.post(f"/runs/{run_id}/cancel")
            events = long_poll(http, run_id, deadline=30)
            wire = record(http, run_id)
            again = http.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json() == {"runId": run_id, "cancelled": True}
        end = ended(events)
        assert end["isError"] is True, end
        assert end["error"]["type"] == "run_cancelled", end
        assert wire["status"] == "errored"
        assert wire["error"]["type"] == "run_cancelled"
        assert again.status_code == 409, again.text
        deployment.records[run_id] = wire

    def test_sigterm_then_restart_keeps_every_run(self, deployment: Deployment) -> None:
        if not self.restarts:
            pytest.skip(self.restarts_elsewhere)
        serve = deployment.serve
        text = f"{marker()} [delay=1500] in flight at SIGTERM"
        with serve.client() as http:
            in_flight = admitted(http, text)
        deployment.project.model_request(text)

        code, took = serve.terminate(SIGTERM_BOUND)
        assert code in EXIT_CODES, f"exit {code} after {took:.1f} s:\n{serve.output()}"
        self.after_exit(deployment)

        serve.start()
        with serve.client() as http:
            events = long_poll(http, in_flight, deadline=RECOVERY_BOUND)
            after = {run_id: record(http, run_id) for run_id in deployment.records}
            in_flight_record = record(http, in_flight)
            fresh = invoke(http, "after the restart", wait=True)
        assert ended(events)["type"] == "run_end"
        # It needed 1.5 s of the drain's 10 s grace: on every backend it finished, on a private
        # Ray instance too (whose hosts end with the server, after the grace).
        assert in_flight_record["status"] == "completed", in_flight_record
        assert after == deployment.records
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["result"] == {"summary": _summary("after the restart")}

    def after_exit(self, deployment: Deployment) -> None:
        """What else must hold once the server has exited."""


class TestSqliteLocal(ServeScenarios):
    store, backend = "sqlite", "local"


class TestPostgresLocal(ServeScenarios):
    store, backend = "postgres", "local"


@pytest.mark.ray
class TestSqlitePrivateRay(ServeScenarios):
    store, backend = "sqlite", "ray"

    def after_exit(self, deployment: Deployment) -> None:
        # The private Ray instance ends with the server: nothing is left in its process group.
        process = deployment.serve.process
        assert process is not None

        def group_gone() -> bool | None:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return True
            return None

        eventually("the private Ray instance's processes to exit", group_gone, 15)


@pytest.mark.ray
class TestPostgresPrivateRay(ServeScenarios):
    store, backend = "postgres", "ray"
    # Stopping and starting a private Ray instance (about 13 s of the suite) is the same on
    # either store: it is proven on SQLite, and a PostgreSQL server's restart with the local
    # backend and with --address.
    restarts = False
    restarts_elsewhere = (
        "SIGTERM and restart of a private Ray instance: TestSqlitePrivateRay; on PostgreSQL: "
        "TestPostgresLocal, TestPostgresRayCluster"
    )


@pytest.mark.ray
class TestSqliteRayCluster(ServeScenarios):
    store, backend = "sqlite", "cluster"


@pytest.mark.ray
class TestPostgresRayCluster(ServeScenarios):
    store, backend = "postgres", "cluster"
