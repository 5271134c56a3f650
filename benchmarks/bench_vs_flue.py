"""flue_actors against Flue 1.0.0-beta.9, side by side, on one fake Anthropic Messages API.

Three processes are started: the peer's fake Messages API (``fake-model/fake_anthropic.py``, the
one model both servers call), Flue (the peer folder's ``serve.sh``, the real Flue serving the
seed's ``summarize``) and ``flue-actors serve`` (durable SQLite, local backend, the real Anthropic
provider: ``ANTHROPIC_API_KEY=sk-ant-fake ANTHROPIC_BASE_URL=<fake>``, ``FLUE_MODEL`` unset).
This process is the load generator for both (an aiohttp client, ``--concurrency`` 16: it shares
the 2 cores with the servers, so it is the lightest Python client at hand; httpx cost 4 to 6
times its CPU per run). Each round measures,
for each server in turn (the order alternates), three workloads of ``--runs`` runs:

* ``wait_result``: ``POST /workflows/summarize?wait=result``;
* ``accept_then_read``: ``POST /workflows/summarize`` (202), then long-poll the run's events
  (``GET /runs/<id>?live=long-poll``) until the stream is closed;
* ``sse_tail``: ``POST`` (202), then a live SSE tail of the run (``?live=sse``) to its end.

For each: runs/s, latency p50/p99, and the server's CPU per run (utime + stime from
``/proc/<pid>/stat`` of the server's whole process tree, every ``--workers`` process and the
parent included, across the load, divided by the runs; far steadier than runs/s on a shared
machine). Also what the same runs cost the two processes both
servers share, the load generator (this process) and the fake model: on 2 cores they take their
part of the machine whichever server is measured, which bounds how far runs/s can follow CPU.
Medians over ``--rounds``; one JSON object printed.

Before the rounds, the load generator calls the fake model itself (``model_call_p50_ms``): the
latency of one streamed call with no server in the way. As shipped, the fake writes a response's
headers and body in two sends with Nagle's algorithm on, so on a kept-alive connection each call
waits about 40 ms for the client's delayed ACK (``--model-nodelay`` removes that stall). Each
run of either server makes one such call, so at ``--concurrency`` C no server can exceed
C / that latency runs/s; ``runs_per_s_bound`` is that rate over Flue's: the highest runs/s ratio
reachable against Flue in that workload, however little CPU a run costs.

    python benchmarks/bench_vs_flue.py [--runs 300] [--rounds 3] [--workers 1] [--peer PATH]
                                       [--quick]

The peer folder is found at ``--peer``, ``$FLUE_PEER_DIR`` or ``shared/peers/flue`` beside the
checkout. Flue's first start builds it (``npm ci``, needs the npm registry) into
``$FLUE_PEER_CACHE`` (default ``$TMPDIR/flue-peer``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from _cpu import cpu_seconds
from _load import concurrently

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = ("wait_result", "accept_then_read", "sse_tail")
TARGETS = {"cpu_per_run_ratio_max": 0.5, "runs_per_s_ratio_min": 2.0, "p99_ratio_max": 1.0}


def _peer_folder(given: str | None) -> Path:
    candidates = [given, os.environ.get("FLUE_PEER_DIR")]
    candidates += [str(parent / "shared" / "peers" / "flue") for parent in ROOT.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "serve.sh").is_file():
            return Path(candidate)
    raise SystemExit("Flue's peer folder (serve.sh) not found: pass --peer or set FLUE_PEER_DIR")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} was not healthy within {seconds} s:\n{log.read_text()[-3000:]}")


@contextmanager
def _process(
    argv: list[str], env: dict[str, str], log: Path, health: str, wait: float
) -> Iterator[int]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(health, process, wait, log)
        yield process.pid
    finally:
        # Its own session: the whole group it started goes, and nothing else.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _workload(
    client: aiohttp.ClientSession, base: str, kind: str, tag: str, requests: list[int]
) -> Callable[[int], Awaitable[None]]:
    """One run of ``kind``; ``requests[0]`` counts the HTTP requests made."""

    async def start(i: int) -> str:
        requests[0] += 1
        async with client.post(
            f"{base}/workflows/summarize", json={"text": f"{tag} text {i}"}
        ) as response:
            body = await response.read()
            assert response.status == 202, body
            run_id: str = json.loads(body)["runId"]
            return run_id

    async def wait_result(i: int) -> None:
        requests[0] += 1
        async with client.post(
            f"{base}/workflows/summarize",
            params={"wait": "result"},
            json={"text": f"{tag} text {i}"},
        ) as response:
            body = await response.read()
            assert response.status == 200, body
            assert json.loads(body)["result"]["summary"].startswith("SUMMARY: "), body

    async def accept_then_read(i: int) -> None:
        run_id, offset = await start(i), "-1"
        while True:
            requests[0] += 1
            async with client.get(
                f"{base}/runs/{run_id}", params={"offset": offset, "live": "long-poll"}
            ) as response:
                body = await response.read()
                assert response.status in (200, 204), body
                offset = response.headers["stream-next-offset"]
                if response.status == 200 and any(
                    event["type"] == "run_end" for event in json.loads(body)
                ):
                    return
                if response.headers.get("stream-closed") == "true":
                    return

    async def sse_tail(i: int) -> None:
        run_id = await start(i)
        params = {"offset": "-1", "live": "sse"}
        requests[0] += 1
        async with client.get(f"{base}/runs/{run_id}", params=params) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"data:") and b'"streamClosed":true' in line:
                    return
        raise AssertionError(f"the SSE tail of {run_id} ended before the stream closed")

    workloads: dict[str, Callable[[int], Awaitable[None]]] = {
        "wait_result": wait_result,
        "accept_then_read": accept_then_read,
        "sse_tail": sse_tail,
    }
    return workloads[kind]


async def _measure(
    base: str, pid: int, model_pid: int, kind: str, runs: int, concurrency: int, tag: str
) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        requests = [0]
        one = _workload(client, base, kind, tag, requests)
        await concurrently(concurrency * 2, concurrency, one)  # warm connections and caches
        requests[0] = 0
        cpu_before, model_before = cpu_seconds(pid), cpu_seconds(model_pid)
        load_before = time.process_time()
        elapsed, latencies = await concurrently(runs, concurrency, one)
        load = time.process_time() - load_before
        cpu, model = cpu_seconds(pid) - cpu_before, cpu_seconds(model_pid) - model_before
    latencies.sort()
    return {
        "runs_per_s": runs / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu_ms_per_run": cpu * 1000 / runs,
        # What the same runs cost the two shared processes: on 2 cores, they bound runs/s.
        "load_generator_cpu_ms_per_run": load * 1000 / runs,
        "model_cpu_ms_per_run": model * 1000 / runs,
        # accept_then_read long-polls until the run ends: as many reads as the run's events
        # become visible in separate steps.
        "requests_per_run": requests[0] / runs,
    }


async def _model_call_p50(model_url: str, calls: int, concurrency: int) -> float:
    """The median latency, in seconds, of one streamed Messages call made straight to the fake
    model on kept-alive connections at ``concurrency``: what each run's one model call takes
    with no server in the way, the floor under either server's latency."""
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 1024,
        "stream": True,
        "messages": [{"role": "user", "content": "Summarize the floor."}],
    }
    headers = {"x-api-key": "sk-ant-fake", "anthropic-version": "2023-06-01"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def call(_: int) -> None:
            async with client.post(
                f"{model_url}/v1/messages", json=body, headers=headers
            ) as response:
                payload = await response.read()
                assert response.status == 200, payload

        await concurrently(concurrency * 2, concurrency, call)  # warm the connections
        _, latencies = await concurrently(calls, concurrency, call)
    return statistics.median(latencies)


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--peer", help="Flue's peer folder (with serve.sh)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="80 runs, 1 round (for CI)")
    parser.add_argument(
        "--workers", type=int, default=1, help="flue-actors serve --workers (default 1)"
    )
    parser.add_argument(
        "--model-nodelay",
        action="store_true",
        help="the peer's fake model with TCP_NODELAY (no 40 ms delayed-ACK stall per call)",
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds = 80, 1
    workloads = [w for w in args.workloads.split(",") if w]
    peer = _peer_folder(args.peer)
    fake_port, flue_port, ours_port = _free_port(), _free_port(), _free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        workflows = logs / "workflows"
        workflows.mkdir()
        (workflows / "summarize.py").write_text((ROOT / "workflows" / "summarize.py").read_text())
        env = {k: v for k, v in os.environ.items() if k != "FLUE_MODEL"}
        ours_env = {
            **env,
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "ANTHROPIC_BASE_URL": fake_url,
            "FLUE_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        }
        fake_argv = [sys.executable, str(peer / "fake-model" / "fake_anthropic.py")]
        if args.model_nodelay:
            fake_argv = [sys.executable, str(HERE / "_nodelay_model.py"), str(peer / "fake-model")]
        fake_argv += ["--port", str(fake_port)]
        ours_argv = [sys.executable, "-m", "flue_actors", "serve", "--port", str(ours_port)]
        ours_argv += ["--workflows", str(workflows), "--workers", str(args.workers)]
        with (
            _process(fake_argv, env, logs / "fake.log", f"{fake_url}/healthz", 30) as model_pid,
            _process(
                [str(peer / "serve.sh"), str(flue_port), fake_url],
                env,
                logs / "flue.log",
                f"http://127.0.0.1:{flue_port}/healthz",
                600,  # the first start builds Flue
            ) as flue_pid,
            _process(
                ours_argv,
                ours_env,
                logs / "ours.log",
                f"http://127.0.0.1:{ours_port}/healthz",
                60,
            ) as ours_pid,
        ):
            servers = {
                "flue": (f"http://127.0.0.1:{flue_port}", flue_pid),
                "flue_actors": (f"http://127.0.0.1:{ours_port}", ours_pid),
            }
            results: dict[str, dict[str, list[dict[str, float]]]] = {
                name: {kind: [] for kind in workloads} for name in servers
            }
            floor = asyncio.run(_model_call_p50(fake_url, args.runs, args.concurrency))
            for round_index in range(args.rounds):
                order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
                for kind in workloads:
                    for name in order:
                        base, pid = servers[name]
                        results[name][kind].append(
                            asyncio.run(
                                _measure(
                                    base,
                                    pid,
                                    model_pid,
                                    kind,
                                    args.runs,
                                    args.concurrency,
                                    f"r{round_index}",
                                )
                            )
                        )
    report: dict[str, Any] = {
        "benchmark": "vs_flue",
        "workflow": "summarize",
        "runs": args.runs,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "model": "peer fake Anthropic Messages API (one server for both)",
        "model_nagle": "off (TCP_NODELAY)" if args.model_nodelay else "on (as shipped)",
        "flue_actors": "flue-actors serve, sqlite file, local backend, anthropic provider",
        "workers": args.workers,
        "flue": "Flue 1.0.0-beta.9 (peer serve.sh, node 22)",
        # At a fixed concurrency C, runs that each wait on one model call end at most
        # C / (that call's latency) per second, however little CPU their server spends.
        "model_call_p50_ms": round(floor * 1000, 2),
    }
    verdicts: list[bool] = []
    for kind in workloads:
        ours, theirs = _medians(results["flue_actors"][kind]), _medians(results["flue"][kind])
        ratios = {
            "cpu_per_run": round(ours["cpu_ms_per_run"] / theirs["cpu_ms_per_run"], 3),
            "runs_per_s": round(ours["runs_per_s"] / theirs["runs_per_s"], 3),
            "p99": round(ours["p99_ms"] / theirs["p99_ms"], 3),
            # The highest runs/s ratio any server could reach against Flue's measured rate,
            # bound by the model call alone (see model_call_p50_ms).
            "runs_per_s_bound": round(args.concurrency / floor / theirs["runs_per_s"], 3),
        }
        meets = (
            ratios["cpu_per_run"] <= TARGETS["cpu_per_run_ratio_max"]
            and ratios["runs_per_s"] >= TARGETS["runs_per_s_ratio_min"]
            and ratios["p99"] <= TARGETS["p99_ratio_max"]
        )
        verdicts.append(meets)
        report[kind] = {"flue_actors": ours, "flue": theirs, "ratio": ratios, "meets": meets}
    report["targets"] = TARGETS
    report["meets_targets"] = all(verdicts)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
