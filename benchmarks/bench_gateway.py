"""The gateway under load: invocations with ``wait=result``, ``?meta`` reads, SSE fan-out.

A ``flue-actors serve`` process (uvicorn, durable file SQLite, ``FLUE_MODEL=fake/echo``) on
127.0.0.1; the load comes from this process with httpx. Prints one JSON object:

* ``POST /workflows/summarize?wait=result``: ``--runs`` requests at concurrency 16, runs/s and
  latency percentiles (target: at least 300 runs/s; Flue's Node server does about 160 here);
* ``GET /runs/<id>?meta``: ``--meta`` requests at concurrency 16;
* for both, the server's CPU per request (utime + stime of its process across the load, over
  the requests): the load generator shares the 2 cores, and runs/s follows the machine's load
  far more than this does;
* ``--readers`` concurrent SSE readers of one run that logs ``--ticks`` events ``--interval``
  apart:
  delivery latency from emission to receipt (target: p99 under 50 ms).

    python benchmarks/bench_gateway.py [--runs 500] [--meta 2000] [--readers 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _cpu import cpu_seconds
from _load import concurrently

ROOT = Path(__file__).resolve().parent.parent

TICKER = """
import asyncio, time
from pydantic import BaseModel
from flue_actors import ActionContext, define_agent, define_workflow

class TickerInput(BaseModel):
    ticks: int
    start_at: float
    interval: float

@define_workflow(agent=define_agent(model="fake/echo"))
async def ticker(ctx: ActionContext[TickerInput]) -> None:
    await asyncio.sleep(max(0.0, ctx.input.start_at - time.time()))
    for i in range(ctx.input.ticks):
        ctx.log.info("tick", i=i, sent=time.time())
        await asyncio.sleep(ctx.input.interval)

async def route() -> None: ...
async def runs() -> None: ...
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _concurrently(
    n: int, concurrency: int, one: Callable[[int], Awaitable[object]], server: int
) -> dict[str, float]:
    cpu = cpu_seconds(server)
    elapsed, latencies = await concurrently(n, concurrency, one)
    cpu = cpu_seconds(server) - cpu
    return {
        "per_s": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "server_cpu_ms_per_request": round(cpu * 1000 / n, 3),
    }


async def _load(base: str, server: int, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.readers + 32)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def invoke(i: int) -> None:
            response = await client.post(
                "/workflows/summarize", params={"wait": "result"}, json={"text": f"text {i}"}
            )
            assert response.status_code == 200, response.text

        await _concurrently(50, 16, invoke, server)  # warm-up
        invoked = await _concurrently(args.runs, 16, invoke, server)

        run_id = (await client.post("/workflows/summarize", json={"text": "x"})).json()["runId"]

        async def meta(_: int) -> None:
            response = await client.get(f"/runs/{run_id}", params={"meta": ""})
            assert response.status_code == 200

        metas = await _concurrently(args.meta, 16, meta, server)

        start_at = time.time() + 3.0
        ticker = await client.post(
            "/workflows/ticker",
            json={"ticks": args.ticks, "start_at": start_at, "interval": args.interval},
        )
        ticker_id = ticker.json()["runId"]
    # Readers live in several processes so that what is measured is delivery, not one client
    # process parsing every frame of every reader.
    per_process = -(-args.readers // args.reader_processes)
    with ProcessPoolExecutor(args.reader_processes) as pool:
        futures = [
            pool.submit(_sse_readers, base, ticker_id, min(per_process, args.readers - i), start_at)
            for i in range(0, args.readers, per_process)
        ]
        delays = [delay for future in futures for delay in future.result()]
    return {
        "invoke_wait_result": invoked,
        "get_meta": metas,
        "sse": {
            "readers": args.readers,
            "events_delivered": len(delays),
            "p50_ms": round(statistics.median(delays) * 1000, 2),
            "p99_ms": round(_percentile(delays, 0.99) * 1000, 2),
        },
    }


def _sse_readers(base: str, run_id: str, count: int, start_at: float) -> list[float]:
    """In a worker process: ``count`` SSE readers of one run; each event's delivery delay."""
    return asyncio.run(_read_sse(base, run_id, count, start_at))


async def _read_sse(base: str, run_id: str, count: int, start_at: float) -> list[float]:
    delays: list[float] = []
    limits = httpx.Limits(max_connections=count + 4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def read() -> None:
            params = {"offset": "-1", "live": "sse"}
            async with client.stream("GET", f"/runs/{run_id}", params=params) as response:
                kind = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data:") and kind == "data":
                        received = time.time()
                        for event in json.loads(line[5:]):
                            if event["type"] == "log" and received > start_at:
                                delays.append(received - event["attributes"]["sent"])
                    elif '"streamClosed":true' in line:
                        return

        await asyncio.gather(*(read() for _ in range(count)))
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--meta", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--reader-processes", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between ticks")
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.meta, args.readers, args.ticks, args.reader_processes = 100, 300, 40, 10, 2
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        workflows = Path(tmp) / "workflows"
        workflows.mkdir()
        (workflows / "summarize.py").write_text((ROOT / "workflows" / "summarize.py").read_text())
        (workflows / "ticker.py").write_text(TICKER)
        env = {
            **os.environ,
            "FLUE_MODEL": "fake/echo",
            "FLUE_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flue_actors",
                "serve",
                "--port",
                str(port),
                "--workflows",
                str(workflows),
            ],
            cwd=tmp,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            results = asyncio.run(_load(base, server.pid, args))
        finally:
            server.terminate()
            server.wait(timeout=10)
    invoked, sse = results["invoke_wait_result"], results["sse"]
    results = {
        "benchmark": "gateway",
        **results,
        "targets": {"invoke_runs_per_s": 300, "sse_p99_ms": 50},
        "meets_targets": invoked["per_s"] >= 300 and sse["p99_ms"] < 50,
        "baseline_note": "Flue's Node server does about 160 runs/s here on the same workload",
    }
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
