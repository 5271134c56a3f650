"""workflows/fanout.py as a user tests it: one task per item, answered by item text, since
concurrent sessions may reach the model in any order."""

from __future__ import annotations

from flue_actors import ModelRequest
from flue_actors.testing import FakeModel, FakeToolCall, FakeTurn, FlueTestKit
from workflows.fanout import fanout

ITEMS = ["I love it", "Broken on arrival", "It is a box"]
LABELS = {"I love it": "positive", "Broken on arrival": "negative", "It is a box": "neutral"}


def classify(request: ModelRequest) -> FakeTurn:
    text = request.messages[0]["content"][0]["text"]
    item = next(item for item in ITEMS if text.startswith(item))
    return FakeTurn(tool_calls=[FakeToolCall("finish", {"sentiment": LABELS[item]}, f"f-{item}")])


def test_fanout_runs_a_task_per_item(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.respond_with(classify)

    run = flue.run(fanout, {"items": ITEMS})

    assert run.status == "completed", run.error
    assert run.result == {"results": [{"item": item, "sentiment": LABELS[item]} for item in ITEMS]}
    starts = run.events_of("task_start")
    assert sorted(start["parentSession"] for start in starts) == ["item-0", "item-1", "item-2"]
    assert all(start["agent"] == "classifier" for start in starts)
    assert all(start["session"].startswith(f"task:{start['parentSession']}:") for start in starts)
    assert [task["isError"] for task in run.events_of("task")] == [False, False, False]
    # Every model request spoke as the classifier profile.
    assert {request.system_prompt for request in fake_model.requests} == {
        "Classify the sentiment of the text you are given."
    }
    assert len(run.events_of("operation")) == 3


def test_fanout_with_no_items(flue: FlueTestKit, fake_model: FakeModel) -> None:
    run = flue.run(fanout, {"items": []})

    assert run.result == {"results": []}
    assert fake_model.requests == []
