"""``kill -9`` of ``flue-actors serve`` with runs in flight, then an immediate restart and no new
traffic: every orphaned run is terminal within lease + sweep seconds, ended ``run_interrupted``,
and readers that were waiting on them (SSE, long-poll) get the ``run_end``. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import invoke_many, run_record, serve_project, start_serve, stopped_at_exit

LEASE_SECONDS = 3.0
SWEEP_SECONDS = 1.0
IN_FLIGHT = 100
# Time for one sweep to end every orphan (one fenced append pair each) on this shared machine.
SWEEP_WORK_SECONDS = 4.0


async def _sse_until_run_end(client: httpx.AsyncClient, run_id: str) -> list[str]:
    """Event types read over SSE until the stream closes."""
    types: list[str] = []
    params = {"offset": "-1", "live": "sse"}
    async with client.stream("GET", f"/runs/{run_id}", params=params) as response:
        assert response.status_code == 200
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data:") and event == "data":
                types.extend(item["type"] for item in json.loads(line[len("data:") :]))
            elif (
                line.startswith("data:")
                and event == "control"
                and json.loads(line[len("data:") :]).get("streamClosed")
            ):
                return types
    return types


async def _long_poll_until_closed(client: httpx.AsyncClient, run_id: str) -> list[str]:
    """Event types read by long-polling from the start until ``Stream-Closed``."""
    types: list[str] = []
    offset = "-1"
    while True:
        response = await client.get(
            f"/runs/{run_id}", params={"offset": offset, "live": "long-poll"}
        )
        assert response.status_code in (200, 204), response.text
        if response.status_code == 200:
            types.extend(item["type"] for item in response.json())
        offset = response.headers["stream-next-offset"]
        if response.headers.get("stream-closed") == "true":
            return types


async def _active_runs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(
        "/runs", params={"workflow": "blocker", "status": "active", "limit": "1000"}
    )
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


async def test_orphans_of_a_killed_server_end_within_the_bound(
    database_url: str, tmp_path: Path
) -> None:
    project = serve_project(tmp_path, database_url)
    options = ("--lease-seconds", str(LEASE_SECONDS), "--sweep-seconds", str(SWEEP_SECONDS))

    with stopped_at_exit(start_serve(project, *options)) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            run_ids = await invoke_many(client, "blocker", IN_FLIGHT)
            assert len(await _active_runs(client)) == IN_FLIGHT
        first.kill()
        killed_at = time.monotonic()

    with stopped_at_exit(start_serve(project, *options)) as second:
        # The bound: the lease runs out LEASE_SECONDS after the kill (the last heartbeat was
        # at most then), or when the new server starts if that took longer (it sweeps at
        # start); the next sweep comes within SWEEP_SECONDS.
        listening = time.monotonic() - killed_at
        bound = max(LEASE_SECONDS, listening) + SWEEP_SECONDS + SWEEP_WORK_SECONDS
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            # Readers opened after the restart, while the runs still look active.
            sse = asyncio.ensure_future(_sse_until_run_end(client, run_ids[0]))
            poll = asyncio.ensure_future(_long_poll_until_closed(client, run_ids[1]))
            remaining = bound - (time.monotonic() - killed_at)
            sse_types, poll_types = await asyncio.wait_for(
                asyncio.gather(sse, poll), timeout=max(remaining, 0.1)
            )
            assert sse_types[-2:] == ["run_resume", "run_end"], sse_types
            assert poll_types[-2:] == ["run_resume", "run_end"], poll_types

            # Every run is terminal within the bound: a long-poll reader on each gets run_end.
            gate = asyncio.Semaphore(50)

            async def ended(run_id: str) -> list[str]:
                async with gate:
                    return await _long_poll_until_closed(client, run_id)

            remaining = bound - (time.monotonic() - killed_at)
            try:
                readers = await asyncio.wait_for(
                    asyncio.gather(*(ended(run_id) for run_id in run_ids)),
                    timeout=max(remaining, 0.1),
                )
            except TimeoutError:
                active = await _active_runs(client)
                raise AssertionError(
                    f"{len(active)} runs still active {bound:.1f} s after the kill "
                    f"(restarted after {listening:.1f} s)"
                ) from None
            assert all(types[-1] == "run_end" for types in readers)
            assert await _active_runs(client) == []

            for run_id in run_ids[:20]:
                record = await run_record(client, run_id)
                assert record["status"] == "errored", record
                assert record["error"]["type"] == "run_interrupted", record
    assert "Traceback" not in second.log()
