"""The collector settings of a long-lived process (``_runtime.heap``) and the SDK transport:
applied by the command itself, never by a test session or a library calling the CLI's
``main``."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flue_actors._cli import main
from flue_actors._runtime.heap import YOUNG_GENERATION
from flue_actors.models._anthropic import TRANSPORT_VARIABLE

_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def test_settling_freezes_what_exists_and_raises_the_young_threshold() -> None:
    # In a process of its own: settling is for the whole interpreter.
    probe = (
        "import gc; from flue_actors._runtime.heap import settle_heap;"
        "before = gc.get_threshold(); settle_heap();"
        "print(gc.get_freeze_count() > 1000, before[1:] == gc.get_threshold()[1:],"
        " gc.get_threshold()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True", str(YOUNG_GENERATION)]


def test_what_a_settled_process_loads_later_is_frozen_too_and_nothing_in_another() -> None:
    # In processes of their own: Ray, imported by a command once its backend connects, is
    # frozen after the command settled its heap; a process that never settled keeps its own.
    probe = (
        "import gc; from flue_actors._runtime.heap import settle_heap, settle_loaded;"
        "{settle} frozen = gc.get_freeze_count();"
        "loaded = [[n] for n in range(5000)]; settle_loaded();"
        "print(gc.get_freeze_count() - frozen >= 5000)"
    )
    for settle, grows in (("settle_heap();", "True"), ("", "False")):
        done = subprocess.run(
            [sys.executable, "-c", probe.format(settle=settle)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert done.stdout.split() == [grows]


def test_the_cli_called_as_a_function_leaves_the_interpreter_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUE_MODEL", "fake/echo")
    monkeypatch.delenv(TRANSPORT_VARIABLE, raising=False)
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "a document"}\n')
    code = main(
        [
            "--database-url", f"sqlite:///{tmp_path / 'runs.db'}",
            "batch", "summarize", str(inputs), "--workflows", str(_WORKFLOWS),
            "--output", str(tmp_path / "out.jsonl"),
        ]
    )  # fmt: skip
    assert code == 0
    [line] = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(line)["result"] == {"summary": "a document"}
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    # Nor the process's environment: the SDK transport stays the one the kit intercepts.
    assert TRANSPORT_VARIABLE not in os.environ
