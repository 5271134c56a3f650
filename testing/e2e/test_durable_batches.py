"""``kill -9`` of ``flue-actors serve --model-batches`` while its runs wait on a Message Batch,
then a restart: every run re-attaches to the batch its log names instead of submitting its turn
again, and completes. The fake Messages API counts the batched requests: exactly one per model
turn, none twice, none through the Messages API."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Final

import pytest

from flue_actors._harness.replay import batch_record
from flue_actors._runtime.run_actor import read_run_events
from flue_actors.store import open_store
from flue_actors.testing.messages_server import MessagesServer

from .support import Project, Serve, eventually, long_poll, three_calls_workflow, types
from .test_durable import STEPS

RUNS: Final = 6
THREE: Final = three_calls_workflow()


def _recorded_batches(database_url: str, run_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each run's batch records, as its log holds them."""

    async def read() -> dict[str, list[tuple[str, str]]]:
        store = open_store(database_url)
        try:
            found = {}
            for run_id in run_ids:
                events, _ = await read_run_events(store, run_id)
                found[run_id] = [r for r in map(batch_record, events) if r is not None]
            return found
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("store", ["sqlite"])
def test_kill_9_while_runs_wait_on_a_batch_submits_no_turn_twice(
    store: str, tmp_path: Path, messages_server: MessagesServer
) -> None:
    database_url = f"sqlite:///{tmp_path / '.flue' / 'flue.db'}"
    project = Project.create(tmp_path, database_url, messages_server)
    (tmp_path / "workflows" / "three.py").write_text(THREE, encoding="utf-8")
    options = ["--lease-seconds", "3", "--sweep-seconds", "1", "--model-batches"]
    options += ["--batch-max-requests", str(RUNS), "--batch-window", "inf"]
    options += ["--batch-poll-interval", "0.1", "--batch-max-poll-interval", "0.2"]
    serve = Serve(project, options)
    markers = sorted(f"m{secrets.token_hex(4)}" for _ in range(RUNS))
    messages_server.batch_processing(None)  # the first batch waits until the test ends it
    try:
        serve.start()
        with serve.client() as http:
            run_ids = []
            for marker in markers:
                response = http.post("/workflows/three", json={"text": marker})
                assert response.status_code == 202, response.text
                run_ids.append(response.json()["runId"])
        # Every run's first turn is in the one batch, and its log says so.
        eventually(
            "the first turns' batch records",
            lambda: all(_recorded_batches(database_url, run_ids).values()) or None,
            timeout=60,
        )
        serve.kill()
        batches = messages_server.batches()
        assert len(batches) == 1
        assert messages_server.batched_requests() == RUNS
        first = _recorded_batches(database_url, run_ids)
        assert {batch_id for records in first.values() for batch_id, _ in records} == {
            batches[0]["id"]
        }
        assert len({custom_id for records in first.values() for _, custom_id in records}) == RUNS
        # The batch ends while no server runs; later batches end at once.
        assert messages_server.complete_batches() == 1
        messages_server.batch_processing(0.0)

        serve.start()
        with serve.client() as http:
            streams = {run_id: long_poll(http, run_id, deadline=90) for run_id in run_ids}

        assert messages_server.batched_requests() == len(STEPS) * RUNS
        assert len(messages_server.batches()) == len(STEPS)
        plain = [r for r in messages_server.requests() if r["path"] == "/v1/messages"]
        assert plain == []
        for run_id, events in streams.items():
            assert [e["eventIndex"] for e in events] == list(range(len(events))), run_id
            end = events[-1]
            assert end["type"] == "run_end", types(events)
            assert end["isError"] is False, (end, serve.output()[-3000:])
            marker = next(m for m in markers if m in str(events[0].get("input")))
            assert end["result"] == [f"SUMMARY: {step} {marker}"[:29] for step in STEPS]
            assert types(events).count("run_resume") == 1
            records = [r for r in map(batch_record, events) if r is not None]
            assert len(records) == len(STEPS)  # the first written once, before the kill
            assert records[0] == first[run_id][0]
            turns = [e for e in events if e["type"] == "turn"]
            assert [t["response"]["batch"] for t in turns] == [
                {"id": batch_id, "customId": custom_id} for batch_id, custom_id in records
            ]
        assert "Traceback" not in serve.output()
    finally:
        messages_server.batch_processing(0.0)
        serve.kill()
