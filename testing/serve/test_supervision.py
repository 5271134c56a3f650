"""The lease supervisor and cancellation, in process, on SQLite and PostgreSQL: a serving runtime
ends orphaned runs continuously and wakes their readers with its own appends; cancelling a run
whose owner is gone or unreachable ends it ``run_cancelled``, consistent with its record; a
draining gateway admits nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flue_actors import Runtime
from flue_actors._clock import SystemClock, format_timestamp
from flue_actors._events import RunAdmittedEvent
from flue_actors._records import admission_header
from flue_actors._runtime.backend import LocalBackend
from flue_actors.gateway import create_app

from .conftest import BLOCKER

# Short enough to keep the tests fast; the lease itself is never waited for (owners here are
# made stale, or fresh, by their heartbeat's timestamp).
SWEEP_SECONDS = 0.2
BOUND = 5.0


@pytest.fixture
async def runtime(tmp_path: Path, database_url: str) -> AsyncIterator[Runtime]:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "blocker.py").write_text(BLOCKER, encoding="utf-8")
    served = Runtime(
        tmp_path / "workflows", store=database_url, lease_seconds=3, sweep_seconds=SWEEP_SECONDS
    )
    try:
        yield served
    finally:
        await served.close(grace_seconds=0)


async def _admit(runtime: Runtime, owner: str, *, heard_ms_ago: int | None) -> str:
    """A run admitted to ``owner``, which last heartbeated ``heard_ms_ago`` (never: None)."""
    now = SystemClock().now_ms()
    run_id = "run_" + runtime.ids.ulid()
    header: RunAdmittedEvent = {
        "type": "run_admitted",
        "runId": run_id,
        "workflowName": "blocker",
        "startedAt": format_timestamp(now - 60_000),
    }
    if heard_ms_ago is not None:
        await runtime.store.heartbeat(owner, now - heard_ms_ago)
    assert await runtime.store.admit_run(header, owner=owner)
    return run_id


async def _types(runtime: Runtime, run_id: str) -> list[str]:
    return [event["type"] for event in await runtime.events(run_id)]


async def test_serving_ends_orphans_now_and_later_and_wakes_their_readers(
    runtime: Runtime,
) -> None:
    crashed = await _admit(runtime, "local:crashed:1:aaaa", heard_ms_ago=60_000)
    # Readers first, while the run is active: they must be woken by the sweep's own append.
    waiting = asyncio.ensure_future(runtime.wait(crashed))
    following = asyncio.ensure_future(_follow_types(runtime, crashed))
    await asyncio.sleep(0)
    assert not waiting.done()

    ended = await runtime.serve()

    assert ended == [crashed]
    record = await asyncio.wait_for(waiting, BOUND)
    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "run_interrupted"
    assert (await asyncio.wait_for(following, BOUND))[-2:] == ["run_resume", "run_end"]
    assert runtime.supervisor.running

    # Orphaned after serving began (no invocation since): a later sweep ends it.
    later = await _admit(runtime, "local:crashed:2:bbbb", heard_ms_ago=60_000)
    record = await asyncio.wait_for(runtime.wait(later), BOUND)
    assert record.error is not None
    assert record.error["type"] == "run_interrupted"


async def _follow_types(runtime: Runtime, run_id: str) -> list[str]:
    return [event.data["type"] async for event in runtime.follow(run_id)]


async def test_a_live_owner_keeps_its_runs(runtime: Runtime) -> None:
    alive = await _admit(runtime, "local:alive:1:cccc", heard_ms_ago=0)
    assert await runtime.serve() == []
    record = await runtime.get_run(alive)
    assert record is not None
    assert record.status == "active"


@pytest.mark.parametrize(
    ("owner", "heard_ms_ago"),
    [
        ("local:elsewhere:1:dddd", 0),  # alive by its lease, but not reachable from here
        ("local:crashed:1:eeee", 60_000),  # gone, and no sweep has run yet
        ("flue-host-unknown", None),  # never heard of
    ],
)
async def test_cancel_of_an_active_run_without_an_owner_here_ends_it_cancelled(
    runtime: Runtime, owner: str, heard_ms_ago: int | None
) -> None:
    run_id = await _admit(runtime, owner, heard_ms_ago=heard_ms_ago)
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        cancelled = await client.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        record = (await client.get(f"/runs/{run_id}", params={"meta": ""})).json()
        assert record["status"] == "errored"
        assert record["error"]["type"] == "run_cancelled"
        # Again: now "not active" is what the record says too.
        again = await client.post(f"/runs/{run_id}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["type"] == "run_not_active"
    assert (await _types(runtime, run_id)) == ["run_resume", "run_end"]
    assert await runtime.cancel(run_id) is False


async def test_a_run_ended_elsewhere_before_its_owner_took_it_stops_at_once(
    runtime: Runtime,
) -> None:
    """The cancel race of a late hand-over: the canceller ends the run, then its owner starts
    it. The owner's first append is refused, and the workflow (which would block forever) is
    stopped instead of running for nobody; the log keeps the canceller's ending alone."""
    run_id = await _admit(runtime, "flue-host-late", heard_ms_ago=0)
    assert await runtime.cancel(run_id, "before the host took it") is True
    record = await runtime.get_run(run_id)
    assert record is not None
    header = admission_header(record)

    assert isinstance(runtime.backend, LocalBackend)
    await runtime.backend.start(header)

    assert await asyncio.wait_for(runtime.backend.join(run_id), BOUND) is True
    assert (await _types(runtime, run_id)) == ["run_resume", "run_end"]
    ended = await runtime.get_run(run_id)
    assert ended is not None
    assert ended.error is not None
    assert ended.error["type"] == "run_cancelled"


async def test_cancel_of_a_run_hosted_here_goes_to_its_actor(runtime: Runtime) -> None:
    receipt = await runtime.invoke("blocker")
    assert await runtime.cancel(receipt.run_id, "enough") is True
    record = await asyncio.wait_for(runtime.wait(receipt.run_id), BOUND)
    assert record.error is not None
    assert record.error["type"] == "run_cancelled"
    assert "run_resume" not in await _types(runtime, receipt.run_id)


async def test_a_draining_gateway_admits_nothing(runtime: Runtime) -> None:
    app = create_app(runtime)
    app.state.draining.begin()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        refused = await client.post("/workflows/blocker")
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "runtime_unavailable"
    assert refused.json()["error"]["meta"] == {"state": "draining"}
    assert (await runtime.list_runs()).runs == []


async def test_close_ends_hosted_runs_interrupted_after_the_grace(runtime: Runtime) -> None:
    receipt = await runtime.invoke("blocker")
    await runtime.close(grace_seconds=0.05)
    reopened = Runtime({}, store=runtime.database_url)
    try:
        record = await reopened.get_run(receipt.run_id)
    finally:
        await reopened.close()
    assert record is not None
    assert record.error is not None
    assert record.error["type"] == "run_interrupted"


def test_a_lease_shorter_than_three_heartbeats_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lease_seconds must be at least 3"):
        Runtime({}, store=f"sqlite:///{tmp_path / 'x.db'}", lease_seconds=1)
