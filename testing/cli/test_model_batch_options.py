"""``flue-actors serve --model-batches`` and its window options, through the real console script:
settings out of range are refused before anything starts (exit 2, no store). The happy path,
served runs batched and surviving ``kill -9``, is testing/e2e/test_durable_batches.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import describe, make_project

REFUSED = {
    "no-requests": (["--batch-max-requests", "0"], "max_requests is between 1 and 100000"),
    "too-many-requests": (["--batch-max-requests", "100001"], "max_requests"),
    "negative-window": (["--batch-window", "-1"], "window and poll_interval"),
    "nan-window": (["--batch-window", "nan"], "--batch-window"),
    "backoff-below-first-poll": (
        ["--batch-poll-interval", "30", "--batch-max-poll-interval", "10"],
        "max_poll_interval is at least poll_interval",
    ),
    "negative-retries": (["--batch-retries", "-1"], "retries is not negative"),
    "unknown-fallback": (["--batch-fallback", "nowhere"], "--batch-fallback"),
    "window-not-a-number": (["--batch-window", "soon"], "--batch-window"),
}


@pytest.mark.parametrize("key", list(REFUSED))
def test_model_batch_settings_out_of_range_are_refused(tmp_path: Path, key: str) -> None:
    options, says = REFUSED[key]
    project = make_project(tmp_path, workflows=["summarize"])
    result = project.run("serve", "--port", "0", "--model-batches", *options)
    assert result.returncode == 2, describe(result)
    assert says in result.stderr, describe(result)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs.db").exists(), "a refused serve touched the store"


def test_serve_lists_the_model_batch_options(tmp_path: Path) -> None:
    project = make_project(tmp_path, workflows=["summarize"])
    result = project.ok("serve", "--help")
    for option in ("--model-batches", "--batch-max-requests", "--batch-window"):
        assert option in result.stdout
