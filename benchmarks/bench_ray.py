"""Runs per second through the Ray backend, against one Ray actor per run and the local backend.

``summarize`` with the fake model on a private local Ray instance (kept on loopback), durable
file SQLite: ``--runs`` runs invoked concurrently through RunHosts; ``--dedicated`` runs with
``isolation="process"`` (a Ray actor each, the design this project rejects for batch work); and
the same ``--runs`` on the local backend, measured in the same process for the ratio. Prints one
JSON object.

    python benchmarks/bench_ray.py [--runs 2000] [--dedicated 20] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from flue_actors._runtime.ray import loopback_environment

os.environ.update(loopback_environment())  # before anything imports ray
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance of this benchmark
os.environ["FLUE_MODEL"] = "fake/echo"

from flue_actors import RayCluster, Runtime

ROOT = Path(__file__).resolve().parent.parent
ISOLATED = (
    (ROOT / "workflows" / "summarize.py")
    .read_text()
    .replace(
        "@define_workflow(agent=agent)",
        '@define_workflow(agent=agent, placement=Placement(isolation="process"))',
    )
    .replace("ActionContext, define_agent", "ActionContext, Placement, define_agent")
)


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this machine (a host's, read from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _host_pids(runtime: Runtime) -> list[int]:
    hosts = runtime.backend._hosts.values()  # type: ignore[attr-defined]
    return [int((await host.describe.remote())["pid"]) for host in hosts]


async def _measure(
    runtime: Runtime, workflow: str, runs: int, hosts: Sequence[int] = ()
) -> dict[str, float]:
    """Runs/s and latencies; CPU per run of this process (which admits and waits) and, for
    the Ray backend, of its host processes (which execute the runs and append their events)."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        began = time.perf_counter()
        record = await runtime.run(workflow, {"text": f"document number {i}"})
        assert record.status == "completed", record.error
        latencies.append(time.perf_counter() - began)

    host_cpu = sum(_process_cpu_seconds(pid) for pid in hosts)
    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(runs)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    host_cpu = sum(_process_cpu_seconds(pid) for pid in hosts) - host_cpu
    latencies.sort()
    measured = {
        "runs": runs,
        "runs_per_s": round(runs / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
        "cpu_ms_per_run": round(cpu * 1000 / runs, 3),
    }
    if hosts:
        measured["host_cpu_ms_per_run"] = round(host_cpu * 1000 / runs, 3)
    return measured


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


async def _main(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    workflows = folder / "workflows"
    ray_runtime = Runtime(workflows, store=f"sqlite:///{folder / 'ray.db'}", backend=RayCluster())
    local_runtime = Runtime(workflows, store=f"sqlite:///{folder / 'local.db'}")
    try:
        await _measure(ray_runtime, "summarize", 200)  # warm-up: workers, imports
        await _measure(local_runtime, "summarize", 200)
        hosts = await _host_pids(ray_runtime)
        hosted, local = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            hosted.append(await _measure(ray_runtime, "summarize", args.runs, hosts))
            local.append(await _measure(local_runtime, "summarize", args.runs))
        dedicated = await _measure(ray_runtime, "isolated", args.dedicated)
    finally:
        await ray_runtime.close()
        ray_runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]
        await local_runtime.close()
    ray_hosts, local_backend = _median(hosted), _median(local)
    return {
        "benchmark": "ray",
        "workflow": "summarize",
        "store": "sqlite file, WAL, synchronous=FULL",
        "rounds": args.rounds,
        "ray_hosts": ray_hosts,
        "ray_actor_per_run": dedicated,
        "local_backend": local_backend,
        "ratio_ray_to_local": round(ray_hosts["runs_per_s"] / local_backend["runs_per_s"], 3),
        "ratio_hosts_to_actor_per_run": round(ray_hosts["runs_per_s"] / dedicated["runs_per_s"], 1),
        "targets": {"ratio_ray_to_local": 0.8},
        "meets_targets": ray_hosts["runs_per_s"] >= 0.8 * local_backend["runs_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--dedicated", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 runs, 1 round (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.dedicated, args.rounds = 500, 4, 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "workflows").mkdir()
        (folder / "workflows" / "summarize.py").write_text(
            (ROOT / "workflows" / "summarize.py").read_text()
        )
        (folder / "workflows" / "isolated.py").write_text(ISOLATED)
        result = asyncio.run(_main(args, folder))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
