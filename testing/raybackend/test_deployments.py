"""Hosts belong to a deployment, on the session's two-node cluster: new code or configuration
gets new hosts, the old ones drain and exit; `flue-actors hosts` lists and retires them; no
credential is an actor argument."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flue_actors import RayCluster, Runtime
from flue_actors._runtime.ray import NAMESPACE, RayBackend

from .conftest import NODE_ENV_PROBE

pytestmark = pytest.mark.ray

POSTGRES = os.environ.get("FLUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Host processes take a few seconds to start here; retiring takes the watch interval (1 s).
BOUND_SECONDS = 30.0


def _backend(runtime: Runtime) -> RayBackend:
    assert isinstance(runtime.backend, RayBackend)
    return runtime.backend


def _alive(names: list[str]) -> set[str]:
    import ray

    named = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    return named & set(names)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {BOUND_SECONDS} s: {what}"
        await asyncio.sleep(0.2)


async def _describe(runtime: Runtime) -> dict[str, dict[str, Any]]:
    import ray

    return {
        name: await ray.get_actor(name, namespace=NAMESPACE).describe.remote()
        for name in _backend(runtime).host_names
    }


async def _started(runtime: Runtime, run_id: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while (await runtime.stream_meta(run_id)).length == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"run {run_id} did not start"
        await asyncio.sleep(0.05)


class Serves:
    """Runtimes on the Ray backend, closed and their hosts ended at the end of the test."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.opened: list[Runtime] = []

    def start(self, store: str | None = None, **env: str) -> Runtime:
        runtime = Runtime(
            self.project / "workflows",
            store=store or f"sqlite:///{self.project / 'flue.db'}",
            backend=RayCluster(),
            env={**os.environ, "FLUE_MODEL": "fake/echo", **env},
        )
        self.opened.append(runtime)
        return runtime

    async def close(self) -> None:
        import ray

        for runtime in self.opened:
            await runtime.close()
            for name in _alive(_backend(runtime).host_names):
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


@pytest.fixture
async def serves(ray_cluster: Any, project: Path) -> Any:
    opened = Serves(project)
    try:
        yield opened
    finally:
        await opened.close()


async def test_new_code_or_model_gets_new_hosts_and_the_old_ones_drain(serves: Serves) -> None:
    first = serves.start()
    one = _backend(first).deployment
    old_hosts = _backend(first).host_names
    record = await first.run("versioned", timeout=BOUND_SECONDS)
    assert record.status == "completed", record.error
    assert isinstance(record.result, dict)
    assert record.result["version"] == "one"
    assert record.result["model"] == "fake/echo"

    # A second serve of the same code and configuration shares the hosts.
    twin = serves.start()
    assert _backend(twin).deployment.id == one.id
    assert _backend(twin).host_names == old_hosts
    old_pids = {info["pid"] for info in (await _describe(first)).values()}
    assert {info["pid"] for info in (await _describe(twin)).values()} == old_pids

    # A run in flight on the old deployment when the workflow changes.
    gate = serves.project / "gate"
    slow = await first.invoke("gated", {"gate": str(gate)})
    await _started(first, slow.run_id)
    source = serves.project / "workflows" / "versioned.py"
    source.write_text(source.read_text().replace('VERSION = "one"', 'VERSION = "two"'))

    second = serves.start()
    two = _backend(second).deployment
    assert two.id != one.id
    assert two.lineage == one.lineage
    assert set(_backend(second).host_names).isdisjoint(old_hosts)
    record = await second.run("versioned", timeout=BOUND_SECONDS)
    assert record.status == "completed", record.error
    assert isinstance(record.result, dict)
    assert record.result["version"] == "two"
    assert record.result["pid"] not in old_pids

    # The old hosts drain: the run they had finishes there, a new one is not run with old code.
    import ray

    slow_host = await first.store.owner_of(slow.run_id)
    assert slow_host in _alive(old_hosts)  # busy, it stays (an idle one may be gone already)
    info = await ray.get_actor(slow_host, namespace=NAMESPACE).describe.remote()
    assert info["state"] == "draining"
    assert info["active"] == 1
    late = await first.run("versioned", timeout=BOUND_SECONDS)
    assert late.status == "errored"
    assert late.error is not None
    # Refused by its draining host, or ended because that host had already exited.
    assert late.error["type"] in ("host_draining", "run_interrupted")
    gate.touch()
    finished = await first.wait(slow.run_id, timeout=BOUND_SECONDS)
    assert finished.status == "completed", finished.error
    assert isinstance(finished.result, dict)
    assert finished.result["pid"] in old_pids
    await _until(lambda: not _alive(old_hosts), "the old deployment's hosts exit")
    # Leaving, they took their rows out of the owners table.
    for name in old_hosts:
        assert await first.store.prune_owners(stale_before_ms=2**62, owner=name) == []

    # A changed model is a new deployment too, and its runs use that model.
    third = serves.start(FLUE_MODEL="fake/echo-next")
    assert _backend(third).deployment.id != two.id
    record = await third.run("versioned", timeout=BOUND_SECONDS)
    # The fake provider knows only fake/echo, so the new model shows in how it is refused.
    assert record.status == "errored"
    assert record.error is not None
    assert 'model "fake/echo-next" could not be resolved' in record.error["message"]
    await _until(
        lambda: not _alive(_backend(second).host_names), "the second deployment's hosts exit"
    )
    assert _alive(_backend(third).host_names) == set(_backend(third).host_names)


def _gcs_actor_record(name: str) -> bytes:
    """What Ray's control plane hands any client about a named actor: its table entry and its
    creation task, arguments included."""
    import grpc
    import ray
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(ray.get_runtime_context().gcs_address) as channel:
        stub = gcs_service_pb2_grpc.ActorInfoGcsServiceStub(channel)
        request = gcs_service_pb2.GetNamedActorInfoRequest(name=name, ray_namespace=NAMESPACE)
        reply = stub.GetNamedActorInfo(request, timeout=10)
    record: bytes = reply.SerializeToString()
    return record


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = "flue_rd_" + uuid.uuid4().hex[:12]
    yield f"{POSTGRES}?schema={schema}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


async def test_credentials_stay_on_the_nodes(
    serves: Serves, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_key = "sk-ant-driver-" + uuid.uuid4().hex
    password = "pw-" + uuid.uuid4().hex
    # The server trusts loopback, so the hosts connect without the password they never get.
    store = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")
    monkeypatch.setenv("ANTHROPIC_API_KEY", api_key)
    runtime = serves.start(
        store, ANTHROPIC_API_KEY=api_key, FLUE_DATABASE_URL=store, NODE_ENV_PROBE="driver"
    )

    record = await runtime.run("versioned", timeout=BOUND_SECONDS)

    assert record.status == "completed", record.error
    result: dict[str, Any] = record.result  # type: ignore[assignment]
    # The host's environment is its node's (as `ray start` had it), not the driver's.
    assert result["node_probe"] == result["process_probe"] == NODE_ENV_PROBE
    assert not [name for name, value in result["env"].items() if api_key in value]
    assert not [name for name, value in result["env"].items() if password in value]
    for name in _backend(runtime).host_names:
        record_bytes = _gcs_actor_record(name)
        # The probe does see the arguments (the workflows folder is one of them) ...
        assert str(serves.project / "workflows").encode() in record_bytes
        # ... and no credential is among them.
        assert api_key.encode() not in record_bytes
        assert password.encode() not in record_bytes


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "flue-actors"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "flue_actors"]
    return subprocess.run(
        [*command, "hosts", *args], capture_output=True, text=True, timeout=120, check=False
    )


async def test_hosts_list_and_stop_through_the_cli(serves: Serves, ray_cluster: Any) -> None:
    import ray

    runtime = serves.start()
    deployment = _backend(runtime).deployment.id
    drained, killed = _backend(runtime).host_names
    address = ray_cluster.address
    busy = await runtime.invoke("sleeper", {"seconds": 60.0})
    await _started(runtime, busy.run_id)
    busy_host = await runtime.store.owner_of(busy.run_id)
    if busy_host != drained:
        drained, killed = killed, drained

    listed = _cli("list", "--json", "--address", address)
    assert listed.returncode == 0, listed.stderr
    hosts = {host["name"]: host for host in json.loads(listed.stdout)}
    ours = {name: host for name, host in hosts.items() if host["deployment"] == deployment}
    assert set(ours) == {drained, killed}
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert {host["node_id"] for host in ours.values()} == nodes
    assert {host["state"] for host in ours.values()} == {"serving"}
    assert ours[drained]["active"] == 1
    assert ours[killed]["active"] == 0
    described = await _describe(runtime)
    assert {name: host["pid"] for name, host in ours.items()} == {
        name: info["pid"] for name, info in described.items()
    }

    refused = _cli("stop", drained, "flue-host-nothing-here", "--address", address)
    assert refused.returncode == 1
    assert "flue-host-nothing-here" in refused.stderr
    assert _alive([drained, killed]) == {drained, killed}  # nothing was stopped

    stopped = _cli("stop", drained, "--address", address)
    assert stopped.returncode == 0, stopped.stderr
    assert f"{drained}  draining" in stopped.stdout
    info = await ray.get_actor(drained, namespace=NAMESPACE).describe.remote()
    assert info["state"] == "draining"
    assert info["active"] == 1  # it keeps its run until the run ends
    await runtime.cancel(busy.run_id, "the test is done with it")
    await _until(lambda: not _alive([drained]), "the drained host exits once idle")

    killing = _cli("stop", "--deployment", deployment, "--now", "--address", address)
    assert killing.returncode == 0, killing.stderr
    assert f"{killed}  killed" in killing.stdout
    await _until(lambda: not _alive([killed]), "the killed host is gone")

    assert _cli("stop", "--address", address).returncode == 2  # nothing chosen
    unreachable = _cli("list", "--address", "127.0.0.1:1")
    assert unreachable.returncode == 1
    assert "ray_cluster_unavailable" in unreachable.stderr
