"""Per-call overhead of the Anthropic provider, streaming, against a local fake Messages API.

A tiny Starlette app (uvicorn, in a subprocess on 127.0.0.1) answers ``POST /v1/messages``
with a canned ``text/event-stream`` response (message_start, one text block in ``--deltas``
deltas, message_delta, message_stop). In this process, sequentially:

* ``provider``: ``AnthropicProvider.complete`` (SDK async client, request mapping, stream
  events mapped to our stream events and content, usage and cost), on the SDK's default
  transport (httpx2);
* ``provider_aiohttp``: the same on the SDK's aiohttp transport (what ``flue-actors serve``
  uses);
* ``baseline``: the same streaming POST with plain ``httpx`` (no SDK, no mapping), reading
  the body line by line.

Both are measured in the same run: calls/s (wall) and CPU ms per call of this process
(``time.process_time``; the server's CPU is not counted). Prints one JSON object.

    python benchmarks/bench_provider.py [--calls 500] [--deltas 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

SERVER = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

deltas = int(sys.argv[2])

def sse(event, data):
    return f"event: {event}\\ndata: {json.dumps(data)}\\n\\n"

parts = [sse("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
    "content": [], "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 1}}})]
parts.append(sse("content_block_start", {"type": "content_block_start", "index": 0,
    "content_block": {"type": "text", "text": ""}}))
for i in range(deltas):
    parts.append(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": f"word{i} "}}))
parts.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
parts.append(sse("message_delta", {"type": "message_delta",
    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    "usage": {"output_tokens": deltas}}))
parts.append(sse("message_stop", {"type": "message_stop"}))
body = "".join(parts).encode()

async def messages(request):
    await request.body()
    return Response(body, media_type="text/event-stream")

app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the fake Messages API did not start")


async def _measure(calls: int, one: Any) -> dict[str, float]:
    for _ in range(20):  # warm up connections and code paths
        await one()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await one()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "calls_per_s": round(calls / wall, 1),
        "cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        "wall_ms_per_call": round(wall * 1000 / calls, 3),
    }


async def _run(base_url: str, calls: int, deltas: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from flue_actors.models import AnthropicProvider, ModelRequest

    provider = AnthropicProvider(api_key="bench", base_url=base_url, transport="httpx")
    on_aiohttp = AnthropicProvider(api_key="bench", base_url=base_url, transport="aiohttp")
    request = ModelRequest(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        system_prompt="Be brief.",
        thinking_level="off",
    )
    seen: list[Any] = []

    async def provider_call() -> None:
        seen.clear()
        response = await provider.complete(request, seen.append)
        assert len(seen) == deltas
        assert response.stop_reason == "stop"

    async def aiohttp_call() -> None:
        seen.clear()
        response = await on_aiohttp.complete(request, seen.append)
        assert len(seen) == deltas
        assert response.stop_reason == "stop"

    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 8192,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        "stream": True,
    }
    headers = {"x-api-key": "bench", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def baseline_call() -> None:
            async with client.stream("POST", "/v1/messages", json=body, headers=headers) as reply:
                lines = 0
                async for _ in reply.aiter_lines():
                    lines += 1
                assert lines > deltas

        baseline = await _measure(calls, baseline_call)
        measured = await _measure(calls, provider_call)
        measured_aiohttp = await _measure(calls, aiohttp_call)
        baseline_again = await _measure(calls, baseline_call)
    await provider.aclose()
    await on_aiohttp.aclose()
    # The baseline is measured before and after the provider; the better of the two is used,
    # so warm-up drift does not flatter the ratio.
    if baseline_again["cpu_ms_per_call"] < baseline["cpu_ms_per_call"]:
        baseline = baseline_again
    return {
        "benchmark": "provider",
        "calls": calls,
        "deltas_per_call": deltas,
        "provider": measured,
        "provider_aiohttp": measured_aiohttp,
        "baseline_httpx": baseline,
        "cpu_ratio": round(measured["cpu_ms_per_call"] / baseline["cpu_ms_per_call"], 2),
        "cpu_ratio_aiohttp": round(
            measured_aiohttp["cpu_ms_per_call"] / baseline["cpu_ms_per_call"], 2
        ),
        "throughput_ratio": round(measured["calls_per_s"] / baseline["calls_per_s"], 2),
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument(
        "--quick", action="store_true", help="300 calls (for CI; fewer weigh the first too much)"
    )
    args = parser.parse_args()
    if args.quick:
        args.calls = 300
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(args.deltas)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_for(port)
        result = asyncio.run(_run(f"http://127.0.0.1:{port}", args.calls, args.deltas))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
