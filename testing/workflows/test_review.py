"""workflows/review.py tested the way a user would: the kit's ``flue`` and ``fake_model``."""

from __future__ import annotations

from flue_actors.testing import FakeModel, FlueTestKit
from workflows.review import review

DRAFT = "# Launch plan\n\nWe ship friday.\n"
REVIEW = "## Review\n\n- Say which Friday.\n"


def test_the_review_is_what_the_model_wrote(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply(tool_calls=[("read", {"path": "document.md"})])
    fake_model.reply(tool_calls=[("write", {"path": "review.md", "content": REVIEW})])
    fake_model.reply("I wrote the review to review.md.")

    run = flue.run(review, {"document": DRAFT})

    assert run.status == "completed"
    assert run.result == {"review": REVIEW}
    assert [tool["toolName"] for tool in run.events_of("tool")] == ["read", "write"]
    # The model read the staged document itself.
    read_result = fake_model.requests[1].messages[-1]
    assert read_result["content"] == [{"type": "text", "text": DRAFT}]
    assert fake_model.pending == 0


def test_no_review_written_gives_an_empty_review(flue: FlueTestKit, fake_model: FakeModel) -> None:
    fake_model.reply("I have no comments.")
    run = flue.run(review, {"document": DRAFT, "name": "plan.md"})
    assert run.result == {"review": ""}
