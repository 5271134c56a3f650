"""SIGKILL of a RunHost in the middle of many runs of a three-model-call workflow, on the real
provider against the out-of-process fake Messages API: every run completes (the host's restarted
incarnation resumes its runs by replay), the fake served at most 3 calls per run plus the ones in
flight at the kill (at most one per run of the killed host), and every run's events are
gap-free."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import pytest
from e2e.support import three_calls_workflow

from flue_actors import Runtime
from flue_actors._runtime.ray import RayBackend, RayCluster
from flue_actors._runtime.run_actor import read_run_events
from flue_actors.testing.messages_server import MessagesServer

pytestmark = pytest.mark.ray

RUNS: Final = 200
BOUND_SECONDS: Final = 60.0
THREE: Final = three_calls_workflow(200)


def _asked(api: MessagesServer, tag: str) -> int:
    return sum(1 for request in api.requests() if tag in str(request.get("body")))


def _asked_per_run(api: MessagesServer, tag: str) -> Counter[int]:
    """Requests by run, each run known by the number in its text (``"{tag} {n}"``)."""
    runs = re.compile(rf"{tag} (\d+)\b")
    asked: Counter[int] = Counter()
    for request in api.requests():
        found = runs.search(str(request.get("body")))
        if found is not None:
            asked[int(found.group(1))] += 1
    return asked


async def test_sigkill_of_a_host_mid_runs_then_every_run_completes_by_replay(
    ray_cluster: Any, project: Path, flue_messages_server_process: MessagesServer
) -> None:
    import ray

    from flue_actors._runtime.ray import NAMESPACE

    api = flue_messages_server_process.for_test()
    (project / "workflows" / "three.py").write_text(THREE, encoding="utf-8")
    # The real provider: no FLUE_MODEL (the hosts read the fake server's URL from their node).
    env = {name: value for name, value in os.environ.items() if name != "FLUE_MODEL"}
    runtime = Runtime(
        project / "workflows",
        store=f"sqlite:///{project / 'flue.db'}",
        backend=RayCluster(),
        env=env,
    )
    tag = "t" + secrets.token_hex(4)
    backend = runtime.backend
    assert isinstance(backend, RayBackend)
    try:
        await runtime.serve()
        receipts = await asyncio.gather(
            *(runtime.invoke("three", {"text": f"{tag} {n}"}) for n in range(RUNS))
        )
        run_ids = [receipt.run_id for receipt in receipts]
        owners = {run_id: await runtime.store.owner_of(run_id) for run_id in run_ids}
        deadline = time.monotonic() + BOUND_SECONDS
        while _asked(api, tag) < RUNS:  # every run has made its first call
            assert time.monotonic() < deadline, "the runs did not start"
            await asyncio.sleep(0.05)
        victim = max(set(owners.values()), key=list(owners.values()).count)
        assert victim is not None
        host = ray.get_actor(victim, namespace=NAMESPACE)
        info = await host.ready.remote()
        os.kill(info["pid"], signal.SIGKILL)

        records = await asyncio.gather(
            *(runtime.wait(run_id, timeout=BOUND_SECONDS) for run_id in run_ids)
        )

        assert [r.status for r in records] == ["completed"] * RUNS, [
            (r.run_id, r.error) for r in records if r.status != "completed"
        ][:3]
        # Each run asks its three calls once; a run of the killed host may ask again the one
        # call it had in flight (a run's calls are sequential: at most one). Counted per run:
        # the other host's runs go on meanwhile, so a total taken at the kill would race them.
        asked = _asked_per_run(api, tag)
        again = {
            n: asked[n]
            for n, run_id in enumerate(run_ids)
            if asked[n] > 3 + (owners[run_id] == victim)
        }
        assert not again, again
        resumed = 0
        for record in records:
            events, _ = await read_run_events(runtime.store, record.run_id)
            assert [e["eventIndex"] for e in events] == list(range(len(events)))
            kinds = [e["type"] for e in events]
            assert kinds.count("run_start") == 1
            assert kinds.count("turn") - sum(1 for e in events if e.get("isError")) >= 3
            resumed += kinds.count("run_resume")
        doomed = sum(1 for owner in owners.values() if owner == victim)
        assert 0 < resumed <= doomed
    finally:
        await runtime.close()
        backend.shutdown_hosts()
