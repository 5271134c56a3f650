"""The README's "Running on a Ray cluster" recipe across two machines (network namespaces).

The cluster (see conftest.py) is built with the real commands: ``ray start --head`` on the head,
``ray start --address`` on the worker, a PostgreSQL server both reach, ``flue-actors serve
--address`` on the head. The tests run in file order; the last one kills the worker machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from flue_actors.client import FlueClient
from flue_actors.store import open_store

from .conftest import BIN, LEASE_SECONDS, RAY_PORT, SWEEP_SECONDS, Cluster, node_environment

# The first test also builds the cluster (machines, PostgreSQL, Ray on each, serve): minutes.
pytestmark = [pytest.mark.ray, pytest.mark.netns, pytest.mark.timeout(300)]

# serve's lease plus its sweep interval plus a heartbeat, with room for a loaded two-core
# machine: every run the dead worker held must be ended within this.
RECOVERY_BOUND_SECONDS: Final = 3 * (LEASE_SECONDS + SWEEP_SECONDS)
# Ray declares a node dead once its health checks fail (about 5 s with the cluster's settings,
# see node_environment).
NODE_DEATH_BOUND_SECONDS: Final = 30.0
# Long enough that the worker's runs are certainly in flight when it is killed.
SLOW_RUN_SECONDS: Final = 6.0


def _owners(cluster: Cluster, run_ids: list[str]) -> dict[str, str | None]:
    """Which host each run was admitted to, from the shared store (read from the root
    namespace, over the bridge)."""

    async def read() -> dict[str, str | None]:
        store = open_store(cluster.postgres.url)
        try:
            return {run_id: await store.owner_of(run_id) for run_id in run_ids}
        finally:
            await store.close()

    return asyncio.run(read())


def _hosts_by_node(cluster: Cluster, client: FlueClient, runs: int = 16) -> dict[str, str]:
    """Run ``whereami`` a few times; map each host (a run's owner) to the node address its runs
    reported. Fails unless there is exactly one host per machine."""
    reports: dict[str, str] = {}
    for _ in range(runs):
        invocation = client.workflows.invoke("whereami", {"seconds": 0}, wait="result")
        assert isinstance(invocation.result, dict), invocation
        node = invocation.result["node"]
        assert isinstance(node, str), invocation
        reports[invocation.run_id] = node
    owners = _owners(cluster, list(reports))
    hosts: dict[str, set[str]] = {}
    for run_id, node in reports.items():
        owner = owners[run_id]
        assert owner is not None, run_id
        assert owner.startswith("flue-host-"), (run_id, owner)
        hosts.setdefault(owner, set()).add(node)
    assert all(len(nodes) == 1 for nodes in hosts.values()), f"a host on two nodes: {hosts}"
    by_node = {owner: nodes.pop() for owner, nodes in hosts.items()}
    assert sorted(by_node.values()) == sorted([cluster.head.address, cluster.worker.address]), (
        f"runs did not spread over both machines: {by_node}\n{cluster.serve_log()}"
    )
    return by_node


def test_sqlite_is_refused_across_machines(cluster: Cluster) -> None:
    database = cluster.project / "flue.db"
    result = subprocess.run(
        cluster.head.command(
            str(BIN / "flue-actors"),
            "serve",
            f"--address={cluster.head.address}:{RAY_PORT}",
            f"--host={cluster.head.address}",
            "--port=8001",
            f"--workflows={cluster.project / 'workflows'}",
        ),
        cwd=cluster.project,
        env=node_environment(FLUE_DATABASE_URL=f"sqlite:///{database}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "This Ray cluster spans 2 machines" in result.stderr, result.stderr
    assert "set FLUE_DATABASE_URL=postgresql://" in result.stderr, result.stderr
    assert "serving" not in result.stderr, result.stderr


def test_runs_spread_over_both_machines(cluster: Cluster) -> None:
    with cluster.client() as client:
        _hosts_by_node(cluster, client)
        texts = [f"text number {index} to summarize" for index in range(8)]
        invocations = [
            client.workflows.invoke("summarize", {"text": text}, wait="result") for text in texts
        ]
        owners = _owners(cluster, [invocation.run_id for invocation in invocations])

    # fake/echo answers with the prompt: each run summarized its own input, on either machine.
    assert [invocation.result for invocation in invocations] == [
        {"summary": text} for text in texts
    ]
    assert len(set(owners.values())) == 2, owners


def test_ray_stays_on_the_machines_own_addresses(cluster: Cluster) -> None:
    """Each machine has only its loopback and its own address, and every socket Ray, the
    gateway and the hosts opened is on those, talking to the subnet or to loopback."""
    subnet = cluster.network.subnet
    # Every process of this cluster (Ray's daemons and workers, the gateway, the hosts) names
    # the cluster's folder on its command line: all of them run inside the two machines.
    inside = set(cluster.head.pids()) | set(cluster.worker.pids())
    ours = _processes_naming(str(cluster.folder))
    assert len(ours) >= 8, ours  # gcs, raylets, agents, the gateway, the hosts' workers...
    assert set(ours) <= inside, {pid: ours[pid] for pid in set(ours) - inside}
    for machine in (cluster.head, cluster.worker):
        assert machine.interface_addresses() == {"127.0.0.1", machine.address}
        listening = machine.sockets("-tl")
        assert listening, f"nothing listens in {machine.namespace}"
        for local, _ in listening:
            host = local.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
            assert host in {"*", "0.0.0.0", "::", "127.0.0.1", machine.address}, (
                machine.namespace,
                local,
            )
        for local, peer in machine.sockets("-t", "state", "connected"):
            host = peer.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
            address = ipaddress.ip_address(host)
            assert address.is_loopback or address in subnet, (machine.namespace, local, peer)


def _processes_naming(text: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        if text in command:
            found[int(entry.name)] = command[:200]
    return found


def _stream_closed(cluster: Cluster, run_id: str) -> bool:
    with httpx.Client(transport=httpx.HTTPTransport(), base_url=cluster.gateway_url) as http:
        response = http.head(f"/runs/{run_id}")
    response.raise_for_status()
    closed: str | None = response.headers.get("Stream-Closed")
    return closed == "true"


def _started(client: FlueClient, run_id: str) -> bool:
    return any(event["type"] == "run_start" for event in client.runs.events(run_id))


def _follow(client: FlueClient, run_id: str, into: list[dict[str, Any]]) -> threading.Thread:
    def follow() -> None:
        into.extend(client.runs.stream(run_id, live="sse"))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def test_killing_the_worker_machine_mid_load_ends_every_run(cluster: Cluster) -> None:
    head, worker = cluster.head.address, cluster.worker.address
    with cluster.client() as client, cluster.client() as follower:
        node_of = _hosts_by_node(cluster, client)
        worker_host = next(owner for owner, node in node_of.items() if node == worker)

        admitted = time.monotonic()
        before = [
            client.workflows.invoke("whereami", {"seconds": SLOW_RUN_SECONDS}).run_id
            for _ in range(24)
        ]
        owners = _owners(cluster, before)
        assert set(owners.values()) == set(node_of), owners
        on_worker = [run_id for run_id in before if owners[run_id] == worker_host]
        # A live reader of a run that will lose its machine: it must see the run end.
        streamed: list[dict[str, Any]] = []
        reader = _follow(follower, on_worker[0], streamed)
        deadline = admitted + SLOW_RUN_SECONDS / 2
        waiting = set(before)
        while waiting and time.monotonic() < deadline:
            waiting = {run_id for run_id in waiting if not _started(client, run_id)}
            time.sleep(0.1)
        assert not waiting, f"runs not started {SLOW_RUN_SECONDS / 2} s after admission: {waiting}"

        killed = time.monotonic()
        cluster.worker.kill_all()
        assert cluster.worker.pids() == []
        # Load goes on while the worker is dead: the gateway still places runs on its host.
        after = [client.workflows.invoke("whereami", {"seconds": 0}).run_id for _ in range(8)]
        run_ids = before + after
        placed = {**owners, **_owners(cluster, after)}  # where each run was admitted

        active = set(run_ids)
        while active and time.monotonic() - killed < RECOVERY_BOUND_SECONDS:
            active = {run_id for run_id in active if client.runs.get(run_id).status == "active"}
            time.sleep(0.2)
        ended_after = time.monotonic() - killed
        assert not active, (
            f"{len(active)} runs still active {ended_after:.1f} s after the worker was killed: "
            f"{sorted(active)}\n{cluster.serve_log()}"
        )
        print(f"\nevery run ended {ended_after:.1f} s after the worker machine was killed")

        finished_by = _owners(cluster, run_ids)
        outcomes: Counter[tuple[str, str, str | None]] = Counter()
        for run_id in run_ids:
            record = client.runs.get(run_id)  # exists: no admitted run was lost
            events = client.runs.events(run_id)
            assert [event["eventIndex"] for event in events] == list(range(len(events))), run_id
            assert events[-1]["type"] == "run_end", (run_id, events[-1])
            assert _stream_closed(cluster, run_id), f"{run_id}: stream not closed"
            node = node_of[placed[run_id] or ""]
            error = record.error["type"] if record.error else None
            outcomes[(node, record.status, error)] += 1
            # Every run completes on the head: a run whose machine died is resumed there by
            # replay (durable runs), the rest never left it.
            assert record.status == "completed", (run_id, record)
            assert record.result == {"node": head}, (run_id, record)
            assert node_of[finished_by[run_id] or ""] == head, (run_id, finished_by[run_id])
            if run_id in before:  # running when the machine died: resumed only if it was there
                resumed = "run_resume" in [event["type"] for event in events]
                assert resumed == (node == worker), (run_id, node, [e["type"] for e in events])
        reader.join(timeout=10)
        assert not reader.is_alive(), "the live reader of a worker's run never saw it end"
        assert streamed, "the live reader got no events"
        assert streamed[-1]["type"] == "run_end", streamed[-3:]
        assert client.runs.list(workflow="whereami", status="active", limit=1000).runs == []
        listed = {run.run_id for run in client.runs.list(workflow="whereami", limit=1000).runs}
        assert set(run_ids) <= listed

    # Both kinds happened: runs on the head finished there, runs on the dead worker resumed.
    print("outcomes (node, status, error type):", dict(outcomes))
    assert {node for node, _, _ in outcomes} == {head, worker}, outcomes

    # Once Ray has declared the worker's node dead, the gateway stops placing runs on its host:
    # every later run completes on the head instead of being admitted to a dead host.
    with cluster.client() as client:
        while "are on nodes that died" not in cluster.serve_log():
            assert time.monotonic() - killed < NODE_DEATH_BOUND_SECONDS, (
                f"the gateway still places runs on the dead worker's host "
                f"{NODE_DEATH_BOUND_SECONDS} s after the kill\n{cluster.serve_log()}"
            )
            client.workflows.invoke("whereami", {"seconds": 0})
            time.sleep(0.5)
        later = [
            client.workflows.invoke("whereami", {"seconds": 0}, wait="result") for _ in range(8)
        ]
    assert [invocation.result for invocation in later] == [{"node": head}] * 8
