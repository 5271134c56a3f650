"""``kill -9`` of ``flue-actors serve`` (local backend) with runs of a three-model-call workflow in
flight, then a restart: every run completes, resumed by replay, the fake Messages API served
at most 3 calls per run plus the ones in flight at the kill, and every stream reads gap-free
from offset 0, on SQLite and PostgreSQL. The same for ``workflows/fanout.py``, whose concurrent
sessions complete out of the order they are asked in (on SQLite). Through the real commands and
the real provider."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any, Final

import pytest

from flue_actors._runtime.run_actor import read_run_events
from flue_actors.store import open_store
from flue_actors.testing.messages_server import MessagesServer

from .support import (
    Project,
    Serve,
    drop_schema,
    eventually,
    long_poll,
    postgres_url,
    three_calls_workflow,
    types,
)

RUNS: Final = 12
STEPS: Final = ("one", "two", "three")
THREE: Final = three_calls_workflow(300)


def _requests_of(api: MessagesServer, markers: set[str]) -> list[dict[str, Any]]:
    return [r for r in api.requests() if any(m in str(r.get("body")) for m in markers)]


def _durable_turns(database_url: str, run_ids: list[str]) -> tuple[int, int]:
    """Model turns the log holds answered (what a resumption will not ask again), and how many
    of the runs have not ended."""

    async def count() -> tuple[int, int]:
        store = open_store(database_url)
        try:
            turns = unfinished = 0
            for run_id in run_ids:
                events, _ = await read_run_events(store, run_id)
                turns += sum(1 for e in events if e["type"] == "turn" and not e["isError"])
                unfinished += not events or events[-1]["type"] != "run_end"
            return turns, unfinished
        finally:
            await store.close()

    return asyncio.run(count())


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_kill_9_of_serve_then_restart_completes_every_run_by_replay(
    store: str, tmp_path: Path, messages_server: MessagesServer
) -> None:
    schema = None
    if store == "sqlite":
        database_url = f"sqlite:///{tmp_path / '.flue' / 'flue.db'}"
    else:
        schema = "e2e_durable_" + secrets.token_hex(6)
        database_url = postgres_url(schema)
    project = Project.create(tmp_path, database_url, messages_server)
    (tmp_path / "workflows" / "three.py").write_text(THREE, encoding="utf-8")
    serve = Serve(project, ["--lease-seconds", "3", "--sweep-seconds", "1"])
    markers = {f"m{secrets.token_hex(4)}" for _ in range(RUNS)}
    try:
        serve.start()
        with serve.client() as http:
            run_ids = []
            for marker in sorted(markers):
                response = http.post("/workflows/three", json={"text": marker})
                assert response.status_code == 202, response.text
                run_ids.append(response.json()["runId"])
            # Killed mid-way: every run has asked at least once, some twice.
            eventually(
                "the runs' first model calls",
                lambda: len(_requests_of(messages_server, markers)) >= RUNS * 3 // 2 or None,
                timeout=60,
            )
        serve.kill()
        asked_before = len(_requests_of(messages_server, markers))
        durable_turns, unfinished = _durable_turns(database_url, run_ids)
        in_flight = asked_before - durable_turns
        assert unfinished > 0
        assert 0 <= in_flight <= unfinished, (in_flight, unfinished)

        serve.start()
        with serve.client() as http:
            streams = {run_id: long_poll(http, run_id, deadline=90) for run_id in run_ids}
        asked = _requests_of(messages_server, markers)

        assert len(asked) <= len(STEPS) * RUNS + in_flight, (len(asked), in_flight)
        resumed = 0
        for run_id, events in streams.items():
            assert [e["eventIndex"] for e in events] == list(range(len(events))), run_id
            end = events[-1]
            assert end["type"] == "run_end", types(events)
            assert end["isError"] is False, (end, types(events), serve.output()[-3000:])
            marker = next(m for m in markers if m in str(events[0].get("input")))
            assert end["result"] == [f"SUMMARY: {step} {marker} [delay"[:29] for step in STEPS]
            kinds = types(events)
            assert kinds.count("run_start") == 1
            assert kinds.count("operation_start") == len(STEPS) == kinds.count("operation")
            resumed += kinds.count("run_resume")
        assert resumed == unfinished  # each run in flight at the kill, once
        assert "Traceback" not in serve.output()
    finally:
        serve.kill()
        if schema is not None:
            drop_schema(schema)


FANOUT_RUNS: Final = 4
ITEMS: Final = 4


def _item(run: int, index: int, marker: str) -> str:
    # The last item is answered first, the first last: the branches complete in the reverse of
    # the order the workflow asks them in, which is the order a replay asks them in again.
    return f"{marker} run {run} item {index} [delay={250 + 450 * (ITEMS - 1 - index)}]"


# On SQLite only: what it adds to the test above (concurrent sessions replayed out of order)
# is the harness's, not the store's, and the kill -9 and restart of each store are proven above.
@pytest.mark.parametrize("store", ["sqlite"])
def test_kill_9_of_serve_resumes_concurrent_sessions_of_fanout(
    store: str, tmp_path: Path, messages_server: MessagesServer
) -> None:
    """``workflows/fanout.py`` (one task per item, in concurrent sessions) killed mid-run and
    resumed: every run completes, none diverges, no answered model call is asked again."""
    schema = None
    if store == "sqlite":
        database_url = f"sqlite:///{tmp_path / '.flue' / 'flue.db'}"
    else:
        schema = "e2e_fanout_" + secrets.token_hex(6)
        database_url = postgres_url(schema)
    project = Project.create(tmp_path, database_url, messages_server)
    fanout = Path(__file__).parents[2] / "workflows" / "fanout.py"
    (tmp_path / "workflows" / "fanout.py").write_text(fanout.read_text("utf-8"), "utf-8")
    serve = Serve(project, ["--lease-seconds", "3", "--sweep-seconds", "1"])
    marker = f"f{secrets.token_hex(4)}"
    # Every classification is one call of ``finish``; twice as many as needed are queued, for
    # the calls in flight at the kill that are asked again.
    messages_server.clear()
    for _ in range(2 * FANOUT_RUNS * ITEMS):
        messages_server.reply(tool_calls=[("finish", {"sentiment": "positive"})])
    try:
        serve.start()
        with serve.client() as http:
            run_ids = []
            for run in range(FANOUT_RUNS):
                items = [_item(run, index, marker) for index in range(ITEMS)]
                response = http.post("/workflows/fanout", json={"items": items})
                assert response.status_code == 202, (response.text, serve.output()[-3000:])
                run_ids.append(response.json()["runId"])
            # Killed once some branches have answered (the later items) and others have not.
            eventually(
                "the first durable classifications",
                lambda: _durable_turns(database_url, run_ids)[0] >= FANOUT_RUNS or None,
                timeout=60,
            )
        serve.kill()
        asked_before = len(_requests_of(messages_server, {marker}))
        durable_turns, unfinished = _durable_turns(database_url, run_ids)
        assert unfinished > 0
        in_flight = asked_before - durable_turns
        assert in_flight >= 0

        serve.start()
        with serve.client() as http:
            streams = {run_id: long_poll(http, run_id, deadline=90) for run_id in run_ids}
        asked = _requests_of(messages_server, {marker})

        assert len(asked) <= FANOUT_RUNS * ITEMS + in_flight, (len(asked), in_flight)
        resumed = 0
        for run, (run_id, events) in enumerate(streams.items()):
            assert [e["eventIndex"] for e in events] == list(range(len(events))), run_id
            end = events[-1]
            assert end["type"] == "run_end", types(events)
            assert end["isError"] is False, (end, types(events), serve.output()[-3000:])
            assert end["result"] == {
                "results": [
                    {"item": _item(run, index, marker), "sentiment": "positive"}
                    for index in range(ITEMS)
                ]
            }
            kinds = types(events)
            assert kinds.count("task_start") == ITEMS == kinds.count("task")
            resumed += kinds.count("run_resume")
        assert resumed == unfinished
        # The branches did complete out of the order they were asked in.
        first = streams[run_ids[0]]
        done = [e["parentSession"] for e in first if e["type"] == "task"]
        assert done == [f"item-{index}" for index in reversed(range(ITEMS))], done
        assert "Traceback" not in serve.output()
    finally:
        serve.kill()
        messages_server.clear()
        if schema is not None:
            drop_schema(schema)
