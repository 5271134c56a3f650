"""Runs per second and peak memory of ``flue-actors batch summarize`` (issue 13.7).

Each subject is the real command in a subprocess over a JSONL file, on a fresh SQLite file
store (``synchronous=FULL``), its peak RSS read from the child's own rusage:

* ``cli_echo``: ``FLUE_MODEL=fake/echo``, at each ``--items`` size;
* ``cli_provider``: the real Anthropic provider (the official SDK, aiohttp transport) against
  the out-of-process fake Messages API (``python -m flue_actors.testing.messages_server``);
* ``cli_workers``: ``fake/echo`` with ``--workers 2`` (the command and two worker processes on
  this 2-core machine), at ``--workers-items``;
* ``cli_ray`` (with ``--ray-items N``): ``fake/echo`` with ``--backend ray``, on a private
  Ray instance the command starts (one RunHost on this one-node machine, beside the command);
* ``baseline``: in this process, the script a user writes today (``Runtime.invoke`` and
  ``wait``, 256 in flight, ``fake/echo``), measured in the same run for the ratio.

``runs_per_s`` is over the command's whole life (start-up included); ``batch_runs_per_s`` is the
command's own figure, from its first admission to its last line (for Ray, whose start-up takes
seconds). One JSON object is printed.

    python benchmarks/bench_batch.py [--items 1000,10000] [--provider-items 1000]
        [--workers-items 10000] [--ray-items 0] [--quick]

``--provider-items 0``, ``--workers-items 0`` and ``--ray-items 0`` leave those subjects out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _load import concurrently

from flue_actors import Runtime, SqliteEventStore
from flue_actors._runtime import WorkflowRegistry
from flue_actors.models import ModelRegistry

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "flue_actors"]


def _inputs(path: Path, items: int) -> None:
    with path.open("w", encoding="utf-8") as file:
        for n in range(items):
            file.write(json.dumps({"text": f"document number {n}"}) + "\n")


def _cli(
    directory: Path, items: int, env: dict[str, str], subject: str, *options: str
) -> dict[str, Any]:
    # Files of their own per subject: an output already there would be resumed, not rerun.
    inputs = directory / f"in-{subject}-{items}.jsonl"
    output = directory / f"out-{subject}-{items}.jsonl"
    _inputs(inputs, items)
    database = directory / f"batch-{items}-{time.monotonic_ns()}.db"
    command = [
        *CLI, "--database-url", f"sqlite:///{database}", "batch", "summarize", str(inputs),
        "--output", str(output), "--workflows", str(ROOT / "workflows"), *options,
    ]  # fmt: skip
    began = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - began
    summary = process.stderr.read().strip().splitlines()[-1:]
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = output.read_text(encoding="utf-8").count("\n") if output.exists() else 0
    own = re.search(r"([\d.]+) runs/s", summary[0]) if summary else None
    return {
        "items": items,
        "exit": process.returncode,
        "output_lines": lines,
        "runs_per_s": round(items / elapsed, 1),
        "batch_runs_per_s": float(own.group(1)) if own else None,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        # CPU of the whole command (start-up, store threads), steadier than runs/s on a
        # machine shared with other work.
        "cpu_ms_per_run": round((usage.ru_utime + usage.ru_stime) * 1000 / items, 3),
        "summary": summary[0] if summary else "",
    }


async def _baseline(items: int, directory: Path) -> tuple[float, float]:
    registry = WorkflowRegistry.discover(ROOT / "workflows")
    store = SqliteEventStore(directory / f"baseline-{time.monotonic_ns()}.db")
    models = ModelRegistry(override="fake/echo")
    async with Runtime(registry, store=store, models=models, env={}) as runtime:

        async def one(i: int) -> None:
            receipt = await runtime.invoke("summarize", {"text": f"document number {i}"})
            await runtime.wait(receipt.run_id)

        cpu = time.process_time()
        elapsed, _ = await concurrently(items, 256, one)
        cpu = time.process_time() - cpu
    return items / elapsed, cpu * 1000 / items


def _messages_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "flue_actors.testing.messages_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip().split()[-1]
    return server, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1000,10000", help="comma-separated sizes")
    parser.add_argument(
        "--provider-items", type=int, default=1000, help="items on the provider (0: not run)"
    )
    parser.add_argument("--ray-items", type=int, default=0, help="items on Ray (0: not run)")
    parser.add_argument(
        "--workers-items", type=int, default=10000, help="items with --workers 2 (0: not run)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 items, no provider or Ray run (for CI)"
    )
    args = parser.parse_args()
    # Enough items that the command's start-up does not decide its CPU per run.
    sizes = [2000] if args.quick else [int(size) for size in args.items.split(",")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUE_")}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        baseline, baseline_cpu = asyncio.run(_baseline(max(sizes[0], 1000), directory))
        echo = [
            _cli(directory, items, {**env, "FLUE_MODEL": "fake/echo"}, "echo") for items in sizes
        ]
        workers: dict[str, Any] | None = None
        if args.workers_items and not args.quick:
            workers_env = {**env, "FLUE_MODEL": "fake/echo"}
            workers = _cli(directory, args.workers_items, workers_env, "workers", "--workers", "2")
        ray: dict[str, Any] | None = None
        if args.ray_items and not args.quick:
            ray_env = {**env, "FLUE_MODEL": "fake/echo"}
            ray = _cli(directory, args.ray_items, ray_env, "ray", "--backend", "ray")
        provider: dict[str, Any] | None = None
        if args.provider_items and not args.quick:
            server, url = _messages_server()
            try:
                provider_env = {
                    **env,
                    "FLUE_MODEL": "anthropic/claude-haiku-4-5",
                    "ANTHROPIC_BASE_URL": url,
                    "ANTHROPIC_API_KEY": "bench-key",
                    "FLUE_ANTHROPIC_TRANSPORT": "aiohttp",
                }
                provider = _cli(directory, args.provider_items, provider_env, "provider")
            finally:
                server.terminate()
                server.wait()
    largest = echo[-1]
    rss = {str(run["items"]): run["peak_rss_mib"] for run in echo}
    result: dict[str, Any] = {
        "benchmark": "batch",
        "workflow": "summarize",
        "store": "sqlite file, WAL, synchronous=FULL",
        "cli_echo": echo,
        "cli_provider": provider,
        "cli_workers": workers,
        "cli_ray": ray,
        "baseline_script_runs_per_s": round(baseline, 1),
        "baseline_script_cpu_ms_per_run": round(baseline_cpu, 3),
        "ratio_cli_to_baseline": round(largest["runs_per_s"] / baseline, 3),
        "cpu_ratio_cli_to_baseline": round(largest["cpu_ms_per_run"] / baseline_cpu, 3),
        "peak_rss_mib_by_items": rss,
        "targets": {
            "cli_echo_runs_per_s": 2000,
            "cli_ray_batch_runs_per_s": 1000,
            "cli_provider_runs_per_s": 500,
        },
        # Local fake/echo: in one process, or with --workers (the machine's two cores).
        "meets_targets": max(largest["runs_per_s"], (workers or largest)["runs_per_s"]) >= 2000
        and (provider is None or provider["runs_per_s"] >= 500)
        and (ray is None or (ray["batch_runs_per_s"] or 0) >= 1000),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
