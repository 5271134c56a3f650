"""The batch's progress line on a terminal: redrawn a few times a second, not once per item."""

from __future__ import annotations

import io
import time

import pytest

from flue_actors._cli import batch as batch_command
from flue_actors._runtime.batch import BatchControl
from flue_actors.models import Usage, UsageMeter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_redrawn_at_most_four_times_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    control, meter = BatchControl(), UsageMeter()
    progress = batch_command._Progress(Terminal(), control, lambda: meter.total, 1000, 0)
    drawn: list[str] = []
    monkeypatch.setattr(progress._live, "update", lambda text: drawn.append(str(text)))
    try:
        for item in range(1, 1001):  # a thousand items in one second
            control.done += 1
            meter.add(Usage(1, 2))
            now[0] = 100.0 + item / 1000
            progress.tick()
    finally:
        progress.close()
    assert 3 <= len(drawn) <= 4
    assert drawn[-1].startswith("done 1000/1000")
    assert "tokens 1000 in / 2000 out" in drawn[-1]
