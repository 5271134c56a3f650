"""Model turns through the Message Batches API, against the out-of-process fake Messages API.

Runs on the local backend, with the real Anthropic provider aimed at
``python -m flue_actors.testing.messages_server`` (batches end as soon as they are made):

* ``summarize``: ``--runs`` runs of ``workflows/summarize.py`` with
  ``Runtime(model_batches=ModelBatches(max_requests=--window, window=--window-seconds))``:
  the number of batched
  requests (must equal the number of runs), of batches (``ceil(runs / window)`` expected) and
  of plain Messages API calls (0); then the same runs without model batches, and the ratio of
  their costs (0.5 expected: the same tokens at batch prices);
* ``tools``: ``--tool-runs`` runs of a workflow whose agent makes 3 model turns with a tool
  call between each: the number of batch rounds (3 expected, each carrying every run's turn).

Prints one JSON object.

    python benchmarks/bench_model_batches.py [--runs 1000] [--window 250] [--window-seconds 300]
                                             [--tool-runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
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


async def _runs(
    workflows: Any, store: str, settings: ModelBatches | None, inputs: list[dict[str, Any]]
) -> tuple[float, float, list[str]]:
    """Runs every input; (seconds, total cost, statuses)."""
    async with Runtime(workflows, store=store, model_batches=settings) as runtime:
        started = time.perf_counter()
        receipts = [await runtime.invoke(_name(workflows), item) for item in inputs]
        records = await asyncio.gather(*(runtime.wait(r.run_id) for r in receipts))
        seconds = time.perf_counter() - started
        costs = [await _cost(runtime, receipt.run_id) for receipt in receipts]
    return seconds, sum(costs), [record.status for record in records]


def _name(workflows: Any) -> str:
    return "summarize" if isinstance(workflows, str) else "add_twice"


def _batches_made(server: MessagesServer) -> list[dict[str, Any]]:
    return server.batches()


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
    batched_s, batched_cost, statuses = await _runs(
        workflows, f"sqlite:///{folder / 'batched.db'}", settings, inputs
    )
    summarize: dict[str, Any] = {
        "runs": args.runs,
        "window": args.window,
        "completed": statuses.count("completed"),
        "batched_requests": view.batched_requests(),
        "batches": len(_batches_made(view)),
        "batches_expected": math.ceil(args.runs / args.window),
        "plain_messages_calls": _plain_calls(view),
        "seconds": round(batched_s, 2),
        "cost_usd": batched_cost,
    }
    view = server.for_test()
    plain_s, plain_cost, plain_statuses = await _runs(
        workflows, f"sqlite:///{folder / 'plain.db'}", None, inputs
    )
    summarize["without_model_batches"] = {
        "completed": plain_statuses.count("completed"),
        "plain_messages_calls": _plain_calls(view),
        "seconds": round(plain_s, 2),
        "cost_usd": plain_cost,
    }
    summarize["cost_ratio"] = round(batched_cost / plain_cost, 6) if plain_cost else None

    view = server.for_test()
    for _ in range(args.tool_runs):
        view.reply("", tool_calls=[["add", {"a": 1, "b": 2}]])
    for _ in range(args.tool_runs):
        view.reply("", tool_calls=[["add", {"a": 3, "b": 4}]])
    for _ in range(args.tool_runs):
        view.reply("3 and 7")
    tool_settings = ModelBatches(max_requests=args.tool_runs, window=120.0, poll_interval=0.05)
    _, _, tool_statuses = await _runs(
        {"add_twice": add_twice},
        f"sqlite:///{folder / 'tools.db'}",
        tool_settings,
        [{"text": "add 1+2, then 3+4"}] * args.tool_runs,
    )
    made = _batches_made(view)
    tools = {
        "runs": args.tool_runs,
        "model_turns_per_run": 3,
        "completed": tool_statuses.count("completed"),
        "batch_rounds": len(made),
        "requests_per_round": [view["request_counts"]["succeeded"] for view in made],
        "plain_messages_calls": _plain_calls(view),
    }
    return {"summarize": summarize, "tools": tools}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--window", type=int, default=250, help="requests per batch at most")
    parser.add_argument("--window-seconds", type=float, default=300.0)
    parser.add_argument("--tool-runs", type=int, default=20)
    args = parser.parse_args()
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
