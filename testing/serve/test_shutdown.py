"""SIGTERM ends ``flue-actors serve`` within ``--graceful-seconds`` (plus the time to record the
interruption of its runs), answering the requests that wait on runs that do not end, and leaving
no run ``active``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx

from .conftest import serve_project, start_serve, stopped_at_exit

GRACEFUL_SECONDS = 2.0
# Beyond the grace: uvicorn's 0.1 s pause, ending the runs still hosted, closing the store.
EXIT_SLACK_SECONDS = 5.0


async def _wait_until_active(client: httpx.AsyncClient, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = await client.get("/runs", params={"workflow": "blocker", "status": "active"})
        runs = response.json()["runs"]
        if len(runs) >= count:
            return [run["runId"] for run in runs]
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} runs became active within 10 s")


async def _wait_until_started(client: httpx.AsyncClient, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = (await client.get(f"/runs/{run_id}")).json()
        if any(event["type"] == "run_start" for event in events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not start within 10 s")


async def test_sigterm_answers_waiters_and_ends_within_the_bound(tmp_path: Path) -> None:
    project = serve_project(tmp_path)
    served = start_serve(project, "--graceful-seconds", str(GRACEFUL_SECONDS))
    with stopped_at_exit(served):
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            admitted = await client.post("/workflows/blocker")
            assert admitted.status_code == 202
            other = admitted.json()["runId"]
            # Its run_start is written just after admission: the readers below start at "now",
            # so they must start after it, or they would be answered with it.
            await _wait_until_started(client, other)
            waiting = asyncio.ensure_future(client.post("/workflows/blocker?wait=result"))
            long_poll = asyncio.ensure_future(
                client.get(f"/runs/{other}", params={"offset": "now", "live": "long-poll"})
            )

            async def sse_lines() -> list[str]:
                params = {"offset": "now", "live": "sse"}
                async with client.stream("GET", f"/runs/{other}", params=params) as response:
                    return [line async for line in response.aiter_lines()]

            sse = asyncio.ensure_future(sse_lines())
            run_ids = await _wait_until_active(client, 2)
            await asyncio.sleep(0.2)  # let the readers reach their waits

            served.terminate()
            signalled = time.monotonic()
            answered = await asyncio.wait_for(
                asyncio.gather(waiting, long_poll, sse), timeout=GRACEFUL_SECONDS
            )
            answered_after = time.monotonic() - signalled
        exit_code = await asyncio.to_thread(
            served.process.wait, GRACEFUL_SECONDS + EXIT_SLACK_SECONDS
        )
        exited_after = time.monotonic() - signalled

    waited, polled, streamed = answered
    # wait=result: 202 with the run id, as an invocation without wait (read it later).
    assert waited.status_code == 202, waited.text
    waited_run = waited.json()["runId"]
    assert waited.json() == {"runId": waited_run}
    assert waited_run in run_ids
    assert polled.status_code == 204
    assert polled.headers.get("stream-closed") is None
    # The SSE stream ended cleanly after its control frame, without the stream being closed.
    controls = [json.loads(line[len("data:") :]) for line in streamed if line.startswith("data:")]
    assert controls
    assert not any(control.get("streamClosed") for control in controls)
    assert answered_after < 1.0, f"waiters answered {answered_after:.2f} s after SIGTERM"
    # uvicorn re-raises the signal once it has shut down: the exit says SIGTERM (143 in a shell).
    assert exit_code == -signal.SIGTERM, served.log()
    assert exited_after < GRACEFUL_SECONDS + EXIT_SLACK_SECONDS

    # The runs it hosted did not outlive it as "active": it ended them run_interrupted.
    for run_id in run_ids:
        record = project.get_run(run_id)
        assert record["status"] == "errored", record
        assert record["error"]["type"] == "run_interrupted", record
