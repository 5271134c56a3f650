"""Model turns through the Message Batches API, against the out-of-process fake Messages API.

Runs the real Anthropic provider aimed at ``python -m flue_actors.testing.messages_server``,
whose batches end ``--processing-ms`` after they are created:

* ``summarize``: ``runtime.batch("summarize", --runs inputs, model_batches=ModelBatches(
  max_requests=--window, window=--window-seconds))`` on a runtime without model batches (all runs
  active at once, so every batch but the last is full): the batched requests (must equal the
  runs, each custom_id once), the batches (``ceil(runs / window)`` expected) and the plain
  Messages API calls (0); then the same batch without ``model_batches``, and the ratio of the
  costs (0.5 expected: the same tokens at batch prices);
* ``tools``: ``--tool-runs`` runs of a workflow whose agent makes 3 model turns with a tool
  call between each: the batch rounds (3 expected, each carrying every run's turn);
* ``kill_9``: ``flue-actors batch summarize --model-batches`` on ``--kill-runs`` lines, killed
  with SIGKILL while its runs wait on their batches (the server holds them for
  ``--kill-processing-ms``), then the same command again: the requests submitted (each
  custom_id once expected), the output lines and their statuses.

Prints one JSON object.

    python benchmarks/bench_model_batches.py [--runs 10000] [--window 2500]
        [--window-seconds 60] [--processing-ms 200] [--tool-runs 20] [--kill-runs 400]
        [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flue_actors import (  # noqa: E402
    ActionContext,
    ModelBatches,
    Runtime,
    define_agent,
    define_tool,
    define_workflow,
)
from flue_actors.store import run_stream  # noqa: E402
from flue_actors.testing.messages_server import MessagesServer  # noqa: E402


class AddInput(BaseModel):
    a: int
    b: int


async def _add(args: AddInput) -> int:
    return args.a + args.b


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str


_agent = define_agent(
    model="anthropic/claude-haiku-4-5",
    tools=[define_tool(name="add", description="Add two integers.", input=AddInput, run=_add)],
    thinking_level="off",
)


@define_workflow(agent=_agent)
async def add_twice(ctx: ActionContext[Question]) -> Answer:
    session = await ctx.harness.session()
    return Answer(answer=(await session.prompt(ctx.input.text)).text)


async def _cost(runtime: Runtime, run_id: str) -> float:
    """The run's model cost: the usage its prompt operations report."""
    total = 0.0
    offset = "-1"
    while True:
        page = await runtime.store.read(run_stream(run_id), offset=offset, limit=1000)
        for event in page.events:
            if '"usage"' in event.raw and event.data.get("type") == "operation":
                total += event.data["usage"]["cost"]["total"]
        if page.up_to_date or not page.events:
            return total
        offset = page.next_offset


async def _batch(
    workflows: Any, store: str, settings: ModelBatches | None, inputs: list[dict[str, Any]]
) -> tuple[float, float, list[str]]:
    """One ``runtime.batch`` of every input (all active at once with model batches, so that
    batches fill up); (seconds, total cost, statuses)."""
    async with Runtime(workflows, store=store) as runtime:
        started = time.perf_counter()
        concurrency = len(inputs) if settings is not None else 256
        items = [
            item
            async for item in runtime.batch(
                _name(workflows), inputs, concurrency=concurrency, model_batches=settings
            )
        ]
        seconds = time.perf_counter() - started
        costs = [await _cost(runtime, item.run_id) for item in items if item.run_id]
    return seconds, sum(costs), [item.status for item in items]


def _name(workflows: Any) -> str:
    return "summarize" if isinstance(workflows, str) else "add_twice"


def _plain_calls(server: MessagesServer) -> int:
    return sum(1 for entry in server.requests() if entry["path"] == "/v1/messages")


async def _main(args: argparse.Namespace, folder: Path, server: MessagesServer) -> dict[str, Any]:
    inputs = [{"text": f"document number {n} to summarize"} for n in range(args.runs)]
    # Full batches go out by count; the time window sends the remainder.
    settings = ModelBatches(
        max_requests=args.window, window=args.window_seconds, poll_interval=0.05
    )
    workflows = str(ROOT / "workflows")

    view = server.for_test()
    view.batch_processing(args.processing_ms / 1000)
    batched_s, batched_cost, statuses = await _batch(
        workflows, f"sqlite:///{folder / 'batched.db'}", settings, inputs
    )
    custom_ids = view.batched_custom_ids()
    summarize: dict[str, Any] = {
        "runs": args.runs,
        "window": args.window,
        "completed": statuses.count("completed"),
        "batched_requests": len(custom_ids),
        "distinct_custom_ids": len(set(custom_ids)),
        "batches": len(view.batches()),
        "batches_expected": math.ceil(args.runs / args.window),
        "plain_messages_calls": _plain_calls(view),
        "seconds": round(batched_s, 2),
        "cost_usd": round(batched_cost, 6),
    }
    view = server.for_test()
    plain_s, plain_cost, plain_statuses = await _batch(
        workflows, f"sqlite:///{folder / 'plain.db'}", None, inputs
    )
    summarize["without_model_batches"] = {
        "completed": plain_statuses.count("completed"),
        "plain_messages_calls": _plain_calls(view),
        "seconds": round(plain_s, 2),
        "cost_usd": round(plain_cost, 6),
    }
    summarize["cost_ratio"] = round(batched_cost / plain_cost, 6) if plain_cost else None

    view = server.for_test()
    view.batch_processing(args.processing_ms / 1000)
    for _ in range(args.tool_runs):
        view.reply("", tool_calls=[["add", {"a": 1, "b": 2}]])
    for _ in range(args.tool_runs):
        view.reply("", tool_calls=[["add", {"a": 3, "b": 4}]])
    for _ in range(args.tool_runs):
        view.reply("3 and 7")
    tool_settings = ModelBatches(max_requests=args.tool_runs, window=120.0, poll_interval=0.05)
    _, _, tool_statuses = await _batch(
        {"add_twice": add_twice},
        f"sqlite:///{folder / 'tools.db'}",
        tool_settings,
        [{"text": "add 1+2, then 3+4"}] * args.tool_runs,
    )
    made = view.batches()
    tools = {
        "runs": args.tool_runs,
        "model_turns_per_run": 3,
        "completed": tool_statuses.count("completed"),
        "batch_rounds": len(made),
        "requests_per_round": [batch["request_counts"]["succeeded"] for batch in made],
        "plain_messages_calls": _plain_calls(view),
    }
    kill_9 = await asyncio.to_thread(_kill_9, args, folder, server)
    return {"summarize": summarize, "tools": tools, "kill_9": kill_9}


def _kill_9(args: argparse.Namespace, folder: Path, server: MessagesServer) -> dict[str, Any]:
    """``flue-actors batch --model-batches`` killed with SIGKILL while its runs wait on their
    batches, then run again to the end."""
    work = folder / "kill9"
    work.mkdir()
    runs = args.kill_runs
    (work / "in.jsonl").write_text(
        "".join(json.dumps({"text": f"killed batch line {n}"}) + "\n" for n in range(runs)),
        encoding="utf-8",
    )
    command = [
        sys.executable, "-m", "flue_actors", "--database-url", f"sqlite:///{work / 'runs.db'}",
        "batch", "summarize", "in.jsonl", "--output", "out.jsonl",
        "--workflows", str(ROOT / "workflows"), "--concurrency", str(runs),
        "--lease-seconds", "3", "--sweep-seconds", "0.5",
        "--model-batches", "--batch-max-requests", str(max(runs // 4, 1)),
        "--batch-window", "0.5", "--batch-poll-interval", "0.05",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    view = server.for_test()
    view.batch_processing(args.kill_processing_ms / 1000)  # still processing at the kill
    with (work / "first.log").open("wb") as log:
        first = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        # Killed once half the turns are in batches (the rest wait to go out, or in flight).
        while view.batched_requests() < runs // 2 and first.poll() is None:
            if time.monotonic() > deadline:
                first.kill()
                raise RuntimeError("the batch never sent half its turns")
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = len(view.batched_custom_ids())
    view.batch_processing(args.processing_ms / 1000)
    started = time.perf_counter()
    rerun = subprocess.run(command, cwd=work, env=env, capture_output=True, timeout=600)
    seconds = time.perf_counter() - started
    if rerun.returncode != 0:
        raise RuntimeError(f"the rerun failed: {rerun.stderr.decode()[-2000:]}")
    rows = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    custom_ids = view.batched_custom_ids()
    return {
        "runs": runs,
        "killed_with_requests_submitted": before,
        "batched_requests": len(custom_ids),
        "distinct_custom_ids": len(set(custom_ids)),
        "submitted_twice": len(custom_ids) - len(set(custom_ids)),
        "output_lines": len(rows),
        "distinct_lines": len({row["line"] for row in rows}),
        "completed": sum(1 for row in rows if row["status"] == "completed"),
        "plain_messages_calls": _plain_calls(view),
        "rerun_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=2_500, help="requests per batch at most")
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument(
        "--processing-ms", type=int, default=200, help="how long the fake server's batches take"
    )
    parser.add_argument("--tool-runs", type=int, default=20)
    parser.add_argument("--kill-runs", type=int, default=400)
    parser.add_argument("--kill-processing-ms", type=int, default=3_000)
    parser.add_argument("--quick", action="store_true", help="the CI form: 200 runs, window 50")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.window, args.tool_runs, args.kill_runs = 200, 50, 5, 40
        args.kill_processing_ms = 1_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with MessagesServer.start(log=folder / "messages.log") as server:
            os.environ.pop("FLUE_MODEL", None)
            os.environ["ANTHROPIC_BASE_URL"] = server.url
            os.environ["ANTHROPIC_API_KEY"] = "sk-ant-fake"
            result = asyncio.run(_main(args, folder, server))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
