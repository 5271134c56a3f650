"""The Runtime's lease supervisor on the Ray backend: it sweeps from the moment the runtime
serves, with no invocation, and leaves the runs of live hosts alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flue_actors import RayCluster, Runtime
from flue_actors._clock import SystemClock, format_timestamp
from flue_actors._events import RunAdmittedEvent

pytestmark = pytest.mark.ray


async def _admit_orphan(runtime: Runtime, owner: str, workflow: str = "fragile") -> str:
    """A run admitted a minute ago to ``owner``, which stopped heartbeating then."""
    now = SystemClock().now_ms()
    run_id = "run_" + runtime.ids.ulid()
    header: RunAdmittedEvent = {
        "type": "run_admitted",
        "runId": run_id,
        "workflowName": workflow,
        "startedAt": format_timestamp(now - 60_000),
    }
    await runtime.store.heartbeat(owner, now - 60_000)
    assert await runtime.store.admit_run(header, owner=owner)
    return run_id


async def test_the_supervisor_sweeps_on_the_ray_backend_without_invocations(
    ray_cluster: Any, project: Path
) -> None:
    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        lease_seconds=3,
        sweep_seconds=0.2,
    )
    try:
        # A host of a node that is gone, as a restarted gateway would find it.
        gone = await _admit_orphan(runtime, "flue-host-00000000-lostnode0000-0")
        waiting = asyncio.ensure_future(runtime.wait(gone, timeout=10))
        assert await runtime.serve() == [gone]
        assert runtime.supervisor.running
        record = await waiting
        assert record.error is not None
        assert record.error["type"] == "run_interrupted"

        later = await _admit_orphan(runtime, "flue-host-00000000-lostnode0000-1")
        record = await runtime.wait(later, timeout=10)  # a later sweep, still no invocation
        assert record.error is not None
        assert record.error["type"] == "run_interrupted"

        # A workflow that resumes (the default): the sweep hands the orphan to a live host,
        # which replays it from its log and completes it.
        resumed = await _admit_orphan(runtime, "flue-host-00000000-lostnode0000-2", "sleeper")
        record = await runtime.wait(resumed, timeout=30)
        assert record.status == "completed", record.error
        types = [event["type"] for event in await runtime.events(resumed)]
        assert types[:2] == ["run_resume", "run_start"]
        assert types[-1] == "run_end"

        # Runs on live hosts (heartbeating) outlast many sweeps.
        receipt = await runtime.invoke("sleeper", {"seconds": 1.0})
        swept = runtime.supervisor.swept
        record = await runtime.wait(receipt.run_id, timeout=30)
        assert record.status == "completed", record.error
        assert runtime.supervisor.swept > swept
    finally:
        await runtime.close()
        runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]


NAPPER = '''\
"""Naps, then completes; invocable and readable over HTTP."""

import asyncio

from flue_actors import ActionContext, define_agent, define_workflow


@define_workflow(agent=define_agent(model="fake/echo"))
async def napper(ctx: ActionContext[None]) -> str:
    await asyncio.sleep(3)
    return "rested"


async def route() -> None: ...


async def runs() -> None: ...
'''


async def test_kill_9_of_serve_leaves_hosts_and_their_runs_going(
    ray_cluster: Any, tmp_path: Path
) -> None:
    import httpx
    import ray
    from serve.conftest import invoke_many, run_record, serve_project, start_serve, stopped_at_exit
    from serve.test_crash_recovery import _long_poll_until_closed

    from flue_actors._runtime.ray import NAMESPACE

    project = serve_project(tmp_path)
    (tmp_path / "workflows" / "napper.py").write_text(NAPPER, encoding="utf-8")
    options = ("--address", ray_cluster.address, "--lease-seconds", "3", "--sweep-seconds", "1")
    try:
        with stopped_at_exit(start_serve(project, *options)) as first:
            async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
                run_ids = await invoke_many(client, "napper", 10)
            first.kill()
        # A new gateway sweeps at once and every second, but the hosts are alive: the runs
        # go on and complete.
        with stopped_at_exit(start_serve(project, *options)) as second:
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                await asyncio.wait_for(
                    asyncio.gather(*(_long_poll_until_closed(client, r) for r in run_ids)), 30
                )
                records = [await run_record(client, run_id) for run_id in run_ids]
            second.terminate()
            await asyncio.to_thread(second.process.wait, 20)
        assert {record["status"] for record in records} == {"completed"}, records
    finally:
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["namespace"] == NAMESPACE and actor["name"].startswith("flue-host-"):
                ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE), no_restart=True)
