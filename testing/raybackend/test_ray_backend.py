"""The Ray backend on a real two-node cluster (both nodes on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flue_actors import Runtime
from flue_actors._clock import SystemClock
from flue_actors._runtime.lease import lease_deadline_ms
from flue_actors._runtime.ray import RayBackend, RayClusterUnavailableError, connect
from flue_actors._runtime.ray.backend import check_store_for_cluster
from flue_actors.store import run_stream

pytestmark = pytest.mark.ray

# The fault test's bound: a killed host's runs end within this many seconds of the kill.
RECOVERY_BOUND_SECONDS = 20.0


def _backend(runtime: Runtime) -> RayBackend:
    assert isinstance(runtime.backend, RayBackend)
    return runtime.backend


async def _host_info(runtime: Runtime) -> dict[str, dict[str, Any]]:
    import ray

    from flue_actors._runtime.ray import NAMESPACE

    infos = {}
    for name in _backend(runtime).host_names:
        actor = ray.get_actor(name, namespace=NAMESPACE)
        infos[name] = await actor.ready.remote()
    return infos


async def test_runs_execute_on_both_nodes(ray_runtime: Runtime) -> None:
    import ray

    hosts = await _host_info(ray_runtime)
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    assert {info["node_id"] for info in hosts.values()} == nodes  # one host per node

    records = await asyncio.gather(*(ray_runtime.run("sleeper", {}) for _ in range(40)))

    assert {record.status for record in records} == {"completed"}
    assert all(isinstance(record.result, dict) for record in records)
    ran_on = {record.result["node"] for record in records if isinstance(record.result, dict)}
    assert ran_on == nodes
    for record in records:
        owner = await ray_runtime.store.owner_of(record.run_id)
        assert owner in hosts
        assert isinstance(record.result, dict)
        assert record.result["node"] == hosts[owner]["node_id"]
        assert record.result["pid"] == hosts[owner]["pid"]


async def test_summarize_through_ray(ray_runtime: Runtime) -> None:
    record = await ray_runtime.run("summarize", {"text": "hello from ray"}, timeout=30)

    assert record.status == "completed"
    assert record.result == {"summary": "hello from ray"}
    types = [event["type"] for event in await ray_runtime.events(record.run_id)]
    assert types[0] == "run_start"
    assert types[-1] == "run_end"


class _PastClock:
    """Admission a minute ago: older than any lease, so only a heartbeat keeps the run."""

    def now_ms(self) -> int:
        return SystemClock().now_ms() - 60_000


async def test_a_run_on_a_host_connects_its_mcp_server(ray_runtime: Runtime) -> None:
    # The host starts the stdio server for the run's prompt (a failure would end the run
    # errored with mcp_connection_failed) and stops it when the run ends.
    record = await ray_runtime.run("mcp_notes", timeout=120)

    assert record.status == "completed", record.error
    assert record.result == "hello over mcp"


async def test_a_dedicated_actor_still_starting_keeps_its_run(ray_runtime: Runtime) -> None:
    """Until its process is up, a dedicated actor cannot heartbeat; the admitting process holds
    the lease for it, so a sweep never ends a run whose actor is merely slow to start."""
    ray_runtime.clock = _PastClock()
    receipt = await ray_runtime.invoke("isolated")
    # At once, before any actor process could have started:
    stale = await ray_runtime.store.orphaned_runs(stale_before_ms=lease_deadline_ms(3.0))
    assert receipt.run_id not in stale
    record = await ray_runtime.wait(receipt.run_id, timeout=60)
    assert record.status == "completed", record.error


async def test_process_isolation_gets_an_actor_of_its_own(ray_runtime: Runtime) -> None:
    import ray

    from flue_actors._runtime.ray import NAMESPACE

    host_pids = {info["pid"] for info in (await _host_info(ray_runtime)).values()}
    record = await ray_runtime.run("isolated", timeout=60)

    assert record.status == "completed", record.error
    result: dict[str, Any] = record.result  # type: ignore[assignment]
    assert result["pid"] not in host_pids
    assert result["actor"] == f"flue-run-{record.run_id}"
    assert await ray_runtime.store.owner_of(record.run_id) == result["actor"]
    deadline = time.monotonic() + 15
    while True:  # the dedicated actor ends with its run
        try:
            ray.get_actor(result["actor"], namespace=NAMESPACE)
        except ValueError:
            break
        assert time.monotonic() < deadline, "the dedicated actor outlived its run"
        await asyncio.sleep(0.2)


async def test_cancel_reaches_the_run_on_its_host(ray_runtime: Runtime) -> None:
    receipt = await ray_runtime.invoke("blocker")
    deadline = time.monotonic() + 15
    while (await ray_runtime.stream_meta(receipt.run_id)).length == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    assert await ray_runtime.cancel(receipt.run_id, "stop it") is True
    record = await ray_runtime.wait(receipt.run_id, timeout=15)

    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "run_cancelled"
    assert record.error["message"] == "stop it"


async def test_an_import_error_on_workers_fails_the_run(ray_runtime: Runtime) -> None:
    record = await ray_runtime.run("worker_only_failure", timeout=30)

    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "workflow_load_failed"
    assert "only_on_the_driver" in record.error["message"]


async def test_killing_a_host_ends_every_one_of_its_runs(ray_runtime: Runtime) -> None:
    """With recovery="fail" (see test_resume_on_ray.py for the default, resumption)."""
    backend = _backend(ray_runtime)
    hosts = await _host_info(ray_runtime)
    receipts = [await ray_runtime.invoke("fragile", {"seconds": 3.0}) for _ in range(50)]
    run_ids = [receipt.run_id for receipt in receipts]
    owners = {run_id: await ray_runtime.store.owner_of(run_id) for run_id in run_ids}
    victim = next(iter(hosts))
    doomed = [run_id for run_id in run_ids if owners[run_id] == victim]
    assert doomed
    assert len(doomed) < len(run_ids)
    deadline = time.monotonic() + 15
    for run_id in run_ids:  # every run has started on its host
        while (await ray_runtime.stream_meta(run_id)).length == 0:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "runs did not start"
            await asyncio.sleep(0.05)

    os.kill(hosts[victim]["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    records = await asyncio.gather(
        *(ray_runtime.wait(run_id, timeout=RECOVERY_BOUND_SECONDS) for run_id in doomed)
    )
    elapsed = time.monotonic() - killed_at

    assert elapsed < RECOVERY_BOUND_SECONDS
    for record in records:
        assert record.status == "errored"
        assert record.error is not None
        assert record.error["type"] == "run_interrupted"
        types = [event["type"] for event in await ray_runtime.events(record.run_id)]
        assert types[-2:] == ["run_resume", "run_end"]
        meta = await ray_runtime.store.stream_meta(run_stream(record.run_id))
        assert meta is not None
        assert meta.closed
    survivors = [run_id for run_id in run_ids if run_id not in doomed]
    for run_id in survivors:
        assert (await ray_runtime.wait(run_id, timeout=15)).status == "completed"
    active = await ray_runtime.list_runs(status="active")
    assert active.runs == []
    # The host came back (restartable) and serves runs again.
    assert (await ray_runtime.run("sleeper", {}, timeout=30)).status == "completed"
    assert set(backend.host_names) == set(hosts)


async def test_a_host_admits_the_batch_it_is_handed_once(ray_runtime: Runtime) -> None:
    """Admission and hand-over are one call to the host: it writes the batch's admission in its
    own store and starts the runs; the same batch again admits and starts nothing more."""
    import ray

    from flue_actors._clock import format_timestamp
    from flue_actors._runtime.ray import NAMESPACE

    owner = _backend(ray_runtime).host_names[0]
    host = ray.get_actor(owner, namespace=NAMESPACE)
    headers = [
        {
            "type": "run_admitted",
            "runId": "run_" + ray_runtime.ids.ulid(),
            "workflowName": "sleeper",
            "startedAt": format_timestamp(ray_runtime.clock.now_ms()),
            "input": {"seconds": 0.0},
        }
        for _ in range(3)
    ]

    assert await host.admit.remote(headers) == [True, True, True]
    assert await host.admit.remote(headers) == [False, False, False]  # admitted before

    for header in headers:
        run_id = header["runId"]
        assert await ray_runtime.store.owner_of(run_id) == owner
        record = await ray_runtime.wait(run_id, timeout=20)
        assert record.status == "completed", record.error
        types = [event["type"] for event in await ray_runtime.events(run_id)]
        assert types.count("run_start") == 1


def test_runs_outlive_the_process_that_admitted_them(ray_cluster: Any, project: Path) -> None:
    """A gateway (any driver) killed after admitting runs does not stop them."""
    database = f"sqlite:///{project / 'flue.db'}"
    script = f"""
import asyncio, sys
from flue_actors import RayCluster, Runtime

async def main():
    runtime = Runtime({str(project / "workflows")!r}, store={database!r},
                      backend=RayCluster({ray_cluster.address!r}))
    for _ in range(5):
        receipt = await runtime.invoke("sleeper", {{"seconds": 2.0}})
        print(receipt.run_id, flush=True)
    print("admitted", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""
    driver = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=project
    )
    run_ids = []
    try:
        assert driver.stdout is not None
        for line in driver.stdout:
            if line.strip() == "admitted":
                break
            run_ids.append(line.strip())
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=10)
        if driver.stdout is not None:
            driver.stdout.close()
    assert len(run_ids) == 5

    async def check() -> None:
        runtime = Runtime(project / "workflows", store=database)
        try:
            for run_id in run_ids:
                record = await runtime.wait(run_id, timeout=30)
                assert record.status == "completed", record.error
        finally:
            await runtime.close()

    asyncio.run(check())
    import ray

    from flue_actors._runtime.ray import NAMESPACE

    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and actor["name"].startswith("flue-host-"):
            ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE), no_restart=True)


def test_an_address_without_a_cluster_is_a_clear_error() -> None:
    began = time.monotonic()
    with pytest.raises(RayClusterUnavailableError) as caught:
        connect("127.0.0.1:1")
    assert "127.0.0.1:1" in caught.value.message
    assert caught.value.type == "ray_cluster_unavailable"
    assert time.monotonic() - began < 5  # refused on the spot, not after Ray's long retries


def test_sqlite_is_refused_on_a_cluster_of_several_machines() -> None:
    nodes = [{"NodeManagerAddress": "10.0.0.1"}, {"NodeManagerAddress": "10.0.0.2"}]
    with pytest.raises(ValueError, match="FLUE_DATABASE_URL"):
        check_store_for_cluster("sqlite:////data/flue.db", nodes)
    check_store_for_cluster("postgresql://flue@db/flue", nodes)
    same_machine = [{"NodeManagerAddress": "127.0.0.1"}, {"NodeManagerAddress": "127.0.0.1"}]
    check_store_for_cluster("sqlite:////data/flue.db", same_machine)
