"""Runs per second of ``summarize`` in process, with the durable log, against its ceiling.

The subject: 1,000 runs invoked concurrently through ``Runtime`` on a file SQLite store with
``synchronous=FULL`` (every acknowledged event fsynced), the fake model answering. The ceiling:
the same workflow function with the same harness in a bare asyncio loop, events discarded.
Each is measured ``--rounds`` times, interleaved; the medians and their ratio are printed as
one JSON object, with this process's CPU per run (steadier than runs/s on a shared machine).

    python benchmarks/bench_runs.py [--runs 1000] [--rounds 3] [--settle-heap]

``--settle-heap``: the collector's settings of ``flue-actors serve`` and ``batch`` (see
``flue_actors._runtime.heap``), applied once the workflows are loaded; without it, the
interpreter's defaults, as a library user's process has them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flue_actors import ActionContext, AgentContext, Runtime, SqliteEventStore
from flue_actors._clock import SystemClock
from flue_actors._harness import Harness, RunLog
from flue_actors._ids import UlidIds
from flue_actors._runtime import WorkflowRegistry
from flue_actors._runtime.heap import settle_heap
from flue_actors.models import ModelRegistry

ROOT = Path(__file__).resolve().parent.parent


class _DiscardingSink:
    def emit(
        self, type: str, payload: dict[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return payload

    def announce(self, type: str, payload: dict[str, Any]) -> None:
        return None


async def _logged(registry: WorkflowRegistry, runs: int, directory: Path) -> dict[str, float]:
    store = SqliteEventStore(directory / f"bench-{time.monotonic_ns()}.db", synchronous="FULL")
    models = ModelRegistry(override="fake/echo")
    async with Runtime(registry, store=store, models=models, env={}) as runtime:
        latencies: list[float] = []

        async def one(i: int) -> None:
            began = time.perf_counter()
            receipt = await runtime.invoke("summarize", {"text": f"document number {i}"})
            record = await runtime.wait(receipt.run_id)
            assert record.status == "completed", record.error
            latencies.append(time.perf_counter() - began)

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(runs)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    latencies.sort()
    return {
        "runs_per_s": runs / elapsed,
        "cpu_ms_per_run": cpu * 1000 / runs,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def _ceiling(registry: WorkflowRegistry, runs: int) -> dict[str, float]:
    definition = registry.get("summarize").definition
    action = definition.action
    models = ModelRegistry(override="fake/echo")
    clock, ids, sink = SystemClock(), UlidIds(), _DiscardingSink()

    async def one(i: int) -> None:
        config = await definition.agent.configure(AgentContext(id=f"bench-{i}", env={}))
        harness = Harness(config=config, models=models, sink=sink, clock=clock, ids=ids)
        parsed = action.parse_input({"text": f"document number {i}"})
        context = ActionContext(harness=harness, log=RunLog(sink), input=parsed)
        action.serialize_output(await action.run(context))
        await harness.close()

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(runs)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"runs_per_s": runs / elapsed, "cpu_ms_per_run": cpu * 1000 / runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settle-heap", action="store_true", help="the collector settings of serve and batch"
    )
    args = parser.parse_args()
    registry = WorkflowRegistry.discover(ROOT / "workflows")
    if args.settle_heap:
        settle_heap()
    logged: list[dict[str, float]] = []
    ceiling: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            logged.append(asyncio.run(_logged(registry, args.runs, Path(tmp))))
            ceiling.append(asyncio.run(_ceiling(registry, args.runs)))
    median = statistics.median
    logged_rate = median(r["runs_per_s"] for r in logged)
    ceiling_rate = median(r["runs_per_s"] for r in ceiling)
    json.dump(
        {
            "benchmark": "runs",
            "workflow": "summarize",
            "runs": args.runs,
            "rounds": args.rounds,
            "store": "sqlite file, WAL, synchronous=FULL",
            "settled_heap": args.settle_heap,
            "durable_runs_per_s": round(logged_rate, 1),
            "durable_p50_ms": round(median(r["p50_ms"] for r in logged), 2),
            "durable_p99_ms": round(median(r["p99_ms"] for r in logged), 2),
            "durable_cpu_ms_per_run": round(median(r["cpu_ms_per_run"] for r in logged), 3),
            "ceiling_runs_per_s": round(ceiling_rate, 1),
            "ceiling_cpu_ms_per_run": round(median(r["cpu_ms_per_run"] for r in ceiling), 3),
            "ratio_durable_to_ceiling": round(logged_rate / ceiling_rate, 3),
            "targets": {"durable_runs_per_s": 2000, "ceiling_runs_per_s": 10000},
            "meets_targets": logged_rate >= 2000 and ceiling_rate >= 10000,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
