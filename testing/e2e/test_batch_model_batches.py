"""``flue-actors batch NAME INPUTS --output OUT --model-batches``: every run's model turn goes
through the Message Batches API of the fake server (one batch for the window), at half the
price, and the summary counts the batched turns and batches."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from flue_actors._runtime.run_actor import read_run_events
from flue_actors.models import Usage
from flue_actors.models._anthropic_catalog import cost_of
from flue_actors.store import open_store
from flue_actors.testing.messages_server import MessagesServer

from .support import Project, describe

ITEMS = 5


def test_batch_with_model_batches_sends_every_turn_in_one_message_batch(
    tmp_path: Path, messages_server: MessagesServer
) -> None:
    project = Project.create(tmp_path, f"sqlite:///{tmp_path / 'runs.db'}", messages_server)
    marker = secrets.token_hex(3)
    texts = [f"doc {marker} {n}" for n in range(ITEMS)]
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8"
    )
    result = project.ok(
        "batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--model-batches",
        "--batch-max-requests", str(ITEMS), "--batch-window", "inf",
        "--batch-poll-interval", "0.05",
    )  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(row["line"] for row in rows) == list(range(1, ITEMS + 1))
    assert {row["status"] for row in rows} == {"completed"}, rows
    by_line = {row["line"]: row for row in rows}
    for line, text in enumerate(texts, start=1):
        assert by_line[line]["result"] == {"summary": f"SUMMARY: {text}"[:29]}
    batches = messages_server.batches()
    assert len(batches) == 1
    assert messages_server.batched_requests() == ITEMS
    assert not [r for r in messages_server.requests() if r["path"] == "/v1/messages"]
    assert f"{ITEMS} model turns in 1 message batches" in result.stderr, describe(result)
    # Batch prices: half of what the same usage costs through the Messages API.
    events = asyncio.run(_events(project.database_url or "", by_line[1]["runId"]))
    (turn,) = [event for event in events if event["type"] == "turn"]
    usage = turn["response"]["usage"]
    assert usage["input"] > 0
    full = cost_of("claude-haiku-4-5", Usage(input=usage["input"], output=usage["output"]))
    assert usage["cost"]["total"] == pytest.approx(full.cost.total / 2)
    assert turn["response"]["batch"]["id"] == batches[0]["id"]


async def _events(database_url: str, run_id: str) -> list[dict[str, Any]]:
    store = open_store(database_url)
    try:
        events, _ = await read_run_events(store, run_id)
        return events
    finally:
        await store.close()


def test_batch_refuses_model_batch_settings_out_of_range(
    tmp_path: Path, messages_server: MessagesServer
) -> None:
    project = Project.create(tmp_path, f"sqlite:///{tmp_path / 'runs.db'}", messages_server)
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    result = project.run(
        "batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--model-batches",
        "--batch-max-requests", "0",
    )  # fmt: skip
    assert result.returncode == 2, describe(result)
    assert "max_requests is between 1 and 100000" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / "runs.db").exists()
