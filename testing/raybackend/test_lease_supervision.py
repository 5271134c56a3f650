"""The Runtime's lease supervisor on the Ray backend: it sweeps from the moment the runtime
serves, with no invocation, and leaves the runs of live hosts alone, even when their heartbeat
lags past the lease, and the runs no host can take over for now."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flue_actors import RayCluster, Runtime
from flue_actors._clock import SystemClock, format_timestamp
from flue_actors._events import RunAdmittedEvent
from flue_actors._runtime.ray import RayBackend
from flue_actors._runtime.ray.host import HostConfig, RunHost
from flue_actors._runtime.recovery import end_orphaned_runs

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


def _quiet_runtime(project: Path) -> Runtime:
    """A served runtime whose own supervisor sweeps only when it serves: the test sweeps."""
    return Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        sweep_seconds=3600,
    )


async def _sweep_as_if_every_lease_expired(runtime: Runtime) -> list[str]:
    """A sweep to which every heartbeat looks a minute old (as a busy host's can lag)."""
    resume = runtime.backend.resume  # type: ignore[attr-defined]
    later = SystemClock().now_ms() + 60_000
    return await end_orphaned_runs(
        runtime.store, runtime.clock, stale_before_ms=later, resume=resume
    )


async def test_a_live_host_whose_heartbeat_lags_keeps_its_run(
    ray_cluster: Any, project: Path
) -> None:
    runtime = _quiet_runtime(project)
    gate = project / "gate"
    try:
        await runtime.serve()
        run_id = (await runtime.invoke("gated", {"gate": str(gate)})).run_id
        owner = await runtime.store.owner_of(run_id)

        # Its host is asked first and still has it: no other host takes over a running run.
        assert await _sweep_as_if_every_lease_expired(runtime) == []
        assert await runtime.store.owner_of(run_id) == owner

        gate.touch()
        record = await runtime.wait(run_id, timeout=30)
        assert record.status == "completed", record.error
        types = [event["type"] for event in await runtime.events(run_id)]
        assert types.count("run_start") == 1
        assert "run_resume" not in types
    finally:
        gate.touch()  # closing lets the runs of this private instance's hosts finish
        await runtime.close()
        runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]


async def _completed_by_one_replay(runtime: Runtime, run_id: str) -> None:
    record = await runtime.wait(run_id, timeout=30)
    assert record.status == "completed", record.error
    types = [event["type"] for event in await runtime.events(run_id)]
    assert types.count("run_resume") == 1
    assert types[:2] == ["run_resume", "run_start"]


async def _restarting_host(config: HostConfig) -> Any:
    """A host of ``config`` killed once and now restarting, for a minute: its restart
    outlasts the test's sweeps, as on a loaded machine. The caller kills it for good."""
    import ray

    class SlowToRestart(RunHost):
        def __init__(self, config: HostConfig) -> None:
            if ray.get_runtime_context().was_current_actor_reconstructed:
                time.sleep(60)
            super().__init__(config)

    host: Any = (
        ray.remote(SlowToRestart)
        .options(max_restarts=-1, max_task_retries=0, num_cpus=0)
        .remote(config)
    )
    os.kill((await host.describe.remote())["pid"], signal.SIGKILL)
    return host


async def test_an_orphan_no_host_can_take_now_is_left_for_the_next_sweep(
    ray_cluster: Any, project: Path
) -> None:
    import ray

    runtime = _quiet_runtime(project)
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    lost = "flue-host-00000000-lostnode0000-0"
    restarting: Any = None
    try:
        await runtime.serve()
        run_id = await _admit_orphan(runtime, lost, "sleeper")
        config = HostConfig(owner="flue-host-slow-to-restart", deployment=backend.deployment)
        restarting = await _restarting_host(config)
        hosts = backend._hosts
        backend._hosts = dict.fromkeys(hosts, restarting)  # every host is restarting
        try:
            assert await _sweep_as_if_every_lease_expired(runtime) == []
        finally:
            backend._hosts = hosts
        record = await runtime.store.get_run(run_id)
        assert record is not None
        assert record.status == "active"
        assert await runtime.store.owner_of(run_id) == lost

        # The next sweep finds a host up: it resumes the run by replay.
        assert await _sweep_as_if_every_lease_expired(runtime) == []
        await _completed_by_one_replay(runtime, run_id)
    finally:
        if restarting is not None:
            ray.kill(restarting, no_restart=True)
        await runtime.close()
        backend.shutdown_hosts()


async def test_a_restarting_owner_keeps_its_run_from_the_other_hosts_for_a_while(
    ray_cluster: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host restarting resumes its past life's runs itself as it opens: a sweep meanwhile
    leaves them to it, since another host taking one over would run it twice (the restarted
    owner, under the same name, claims it from itself). A host that stays down past
    ``OWNER_RESTART_SECONDS`` is taken to be stuck: another host resumes its runs."""
    import ray

    from flue_actors._runtime.ray import backend as ray_backend

    runtime = _quiet_runtime(project)
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    restarting: Any = None
    try:
        await runtime.serve()
        hosts = dict(backend._hosts)
        owner = sorted(hosts)[0]
        assert len(hosts) > 1  # another host could take the run over
        run_id = await _admit_orphan(runtime, owner, "sleeper")
        config = HostConfig(owner=owner, deployment=backend.deployment)
        restarting = await _restarting_host(config)
        backend._hosts = {**hosts, owner: restarting}  # the run's owner is restarting
        try:
            assert await _sweep_as_if_every_lease_expired(runtime) == []
            assert await runtime.store.owner_of(run_id) == owner
            record = await runtime.store.get_run(run_id)
            assert record is not None
            assert record.status == "active"
            assert await runtime.events(run_id) == []  # nobody resumed it

            monkeypatch.setattr(ray_backend, "OWNER_RESTART_SECONDS", 0.0)
            assert await _sweep_as_if_every_lease_expired(runtime) == []
        finally:
            backend._hosts = hosts
        assert await runtime.store.owner_of(run_id) != owner
        await _completed_by_one_replay(runtime, run_id)
    finally:
        if restarting is not None:
            ray.kill(restarting, no_restart=True)
        await runtime.close()
        backend.shutdown_hosts()


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
