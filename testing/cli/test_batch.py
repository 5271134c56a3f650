"""``flue-actors batch`` through the real console script (issue 13.2, 13.3 and bad input)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import LineReader, Project, describe, make_project

HELD = '''\
"""Returns its text upper-cased; an input with "hold" never ends while a file named "hold"
is in the working directory (a run in flight; resumed once the file is gone, it ends)."""
import asyncio
from pathlib import Path

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class Item(BaseModel):
    text: str
    hold: bool = False


@define_workflow(agent=define_agent(model="fake/echo"))
async def held(ctx: ActionContext[Item]) -> str:
    if ctx.input.hold and Path("hold").exists():
        await asyncio.Event().wait()
    return ctx.input.text.upper()
'''


def _project(tmp_path: Path) -> Project:
    project = make_project(tmp_path, workflows=["summarize"])
    (project.root / "workflows" / "held.py").write_text(HELD, encoding="utf-8")
    (project.root / "hold").write_text("", encoding="utf-8")
    return project


def _outputs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_inputs(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_batch_writes_one_line_per_input_with_errors_for_bad_lines(tmp_path: Path) -> None:
    project = _project(tmp_path)
    inputs = project.root / "in.jsonl"
    _write_inputs(
        inputs,
        [json.dumps({"text": f"doc {n}"}) for n in range(20)] + ["{not json", '{"nope": 1}', ""],
    )
    result = project.run("batch", "summarize", "in.jsonl", "--output", "out.jsonl")
    assert result.returncode == 1, describe(result)  # two items failed
    rows = _outputs(project.root / "out.jsonl")
    assert sorted(row["line"] for row in rows) == list(range(1, 23))
    by_line = {row["line"]: row for row in rows}
    assert by_line[5]["status"] == "completed"
    assert by_line[5]["result"] == {"summary": "doc 4"}
    assert by_line[5]["workflow"] == "summarize"
    assert by_line[5]["key"].startswith("sha256:")
    assert by_line[21]["status"] == "errored"
    assert "runId" not in by_line[21]
    assert by_line[21]["error"]["type"] == "invalid_json"
    assert by_line[21]["error"]["message"].startswith("Line 21 ")
    assert by_line[22]["error"]["type"] == "action_input_validation"
    assert "20 completed, 2 failed" in result.stderr
    # fake/echo reports a token in per message and a token out per word ("doc 4").
    assert "tokens 20 in / 40 out" in result.stderr
    assert len(project.all_runs()) == 20
    # Run again: everything is in the output already; nothing runs, nothing is appended, and
    # the exit status is still the output's (two of its lines failed).
    again = project.run("batch", "summarize", "in.jsonl", "--output", "out.jsonl")
    assert again.returncode == 1, describe(again)
    assert "0 completed, 0 failed" in again.stderr
    assert "22 already in the output, 2 of them failed" in again.stderr
    assert len(_outputs(project.root / "out.jsonl")) == 22
    assert len(project.all_runs()) == 20
    # Lines lost from the output: their keys find the runs that ended, which are answered
    # without a model call, and the totals are this invocation's (none). Every line this
    # invocation writes completes; the two failures an earlier one wrote still fail the batch.
    lines = (project.root / "out.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if '"runId"' in line][:10]
    kept += [line for line in lines if '"runId"' not in line]
    (project.root / "out.jsonl").write_text("".join(line + "\n" for line in kept))
    resumed = project.run("batch", "summarize", "in.jsonl", "--output", "out.jsonl")
    assert resumed.returncode == 1, describe(resumed)
    assert "10 completed, 0 failed" in resumed.stderr
    assert "10 found from an earlier batch, 12 already in the output, 2 of them failed" in (
        resumed.stderr
    )
    assert "tokens 0 in / 0 out" in resumed.stderr
    assert len(_outputs(project.root / "out.jsonl")) == 22
    assert len(project.all_runs()) == 20


def test_batch_reads_stdin_and_writes_stdout_keyed_by_a_field(tmp_path: Path) -> None:
    project = _project(tmp_path)
    lines = "".join(json.dumps({"text": f"t{n}", "id": n}) + "\n" for n in range(5))
    result = subprocess.run(
        project.command("batch", "held", "-", "--output", "-", "--key", "id"),
        cwd=project.root,
        env=project._env(None),
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, describe(result)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((row["line"], row["key"], row["result"]) for row in rows) == [
        (n + 1, str(n), f"T{n}") for n in range(5)
    ]


def test_batch_refuses_non_utf8_input_naming_the_line(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project.root / "in.jsonl").write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    result = project.run("batch", "held", "in.jsonl", "--output", "out.jsonl")
    assert result.returncode == 1, describe(result)
    assert "Line 2 of the inputs is not UTF-8" in result.stderr
    assert "batch_input_invalid" in result.stderr
    assert project.all_runs() == []


def test_batch_refuses_a_ray_address_for_the_local_backend(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _write_inputs(project.root / "in.jsonl", [json.dumps({"text": "a"})])
    result = project.run(
        "batch", "held", "in.jsonl", "--output", "out.jsonl",
        "--backend", "local", "--address", "127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 2, describe(result)
    assert "--address needs --backend ray" in result.stderr
    assert not (project.root / "out.jsonl").exists()


def test_batch_refuses_an_output_of_another_batch_unless_forced(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _write_inputs(project.root / "a.jsonl", [json.dumps({"text": "a"})])
    _write_inputs(project.root / "b.jsonl", [json.dumps({"text": "b"})])
    project.ok("batch", "held", "a.jsonl", "--output", "out.jsonl")
    other_inputs = project.run("batch", "held", "b.jsonl", "--output", "out.jsonl")
    assert other_inputs.returncode == 1
    assert "different batch" in other_inputs.stderr
    other_workflow = project.run("batch", "summarize", "a.jsonl", "--output", "out.jsonl")
    assert other_workflow.returncode == 1, describe(other_workflow)
    assert "holds results of workflow 'held'" in other_workflow.stderr
    assert [row["result"] for row in _outputs(project.root / "out.jsonl")] == ["A"]
    forced = project.run("batch", "held", "b.jsonl", "--output", "out.jsonl", "--force")
    assert forced.returncode == 0, describe(forced)
    assert [row["result"] for row in _outputs(project.root / "out.jsonl")] == ["B"]


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="utf-8").count("\n") >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} lines")


def test_a_batch_killed_with_sigkill_resumes_without_running_anything_twice(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    lines = [json.dumps({"text": f"t{n}", "hold": n in (3, 7)}) for n in range(12)]
    _write_inputs(project.root / "in.jsonl", lines)
    args = ("batch", "held", "in.jsonl", "--output", "out.jsonl")
    first = project.start(*args, "--lease-seconds", "3", "--sweep-seconds", "0.5")
    out = project.root / "out.jsonl"
    _wait_for_lines(out, 10, first)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    before = {row["line"]: row for row in _outputs(out)}
    assert len(before) == 10
    assert 4 not in before
    assert 8 not in before
    with out.open("a", encoding="utf-8") as file:
        file.write('{"line": 4, "workfl')  # a line the kill cut short
    (project.root / "hold").unlink()
    result = project.run(*args, "--lease-seconds", "3", "--sweep-seconds", "0.5", timeout=60)
    # The two runs in flight at the kill are re-attached to by their keys, not admitted
    # again; with their owner gone, the lease sweep resumes them and they end.
    assert result.returncode == 0, describe(result)
    assert "10 already in the output" in result.stderr
    assert "2 found from an earlier batch" in result.stderr
    rows = _outputs(out)
    assert sorted(row["line"] for row in rows) == list(range(1, 13))
    after = {row["line"]: row for row in rows}
    assert (after[4]["result"], after[8]["result"]) == ("T3", "T7")
    assert len(project.all_runs()) == 12  # one run per input, whatever was killed
    assert {row["runId"] for row in rows} == {run["runId"] for run in project.all_runs()}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_batch_rate_limits_pace_every_run_and_the_summary_says_how_long(
    tmp_path: Path, workers: str
) -> None:
    project = _project(tmp_path)
    _write_inputs(project.root / "in.jsonl", [json.dumps({"text": f"d{n}"}) for n in range(62)])
    started = time.monotonic()
    result = project.run(
        "batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--workers", workers,
        "--max-requests-per-minute", "60",
    )  # fmt: skip
    assert result.returncode == 0, describe(result)
    # A minute's 60 requests may go at once; the 62nd goes 2 s after the limiter began at
    # the earliest (less the refill while the first 60 went out on a slow machine). With two
    # workers too: they share the command's one budget (two budgets of 60 would let all 62 go).
    assert time.monotonic() - started >= 2.0
    match = re.search(r"throttled (\d+\.\d)s \(0 cool-downs\)", result.stderr)
    assert match is not None, describe(result)
    assert 0.5 <= float(match.group(1)) <= 3.0
    assert len(_outputs(project.root / "out.jsonl")) == 62


def interrupt_twice(
    project: Project, process: subprocess.Popen[str], *, active: int, counted: str | None = None
) -> None:
    """Once ``active`` runs are in flight: Ctrl-C (the batch stops admitting and waits for
    them), then Ctrl-C again (it cancels them, saying how many it knows of: ``counted``, a
    pattern, default ``active``, and exits 130)."""
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while len(project.list_runs("--status", "active")["runs"]) < active:
        assert time.monotonic() < deadline, "the held runs never started"
        assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stderr = LineReader(process.stderr)
    assert stderr.wait_for(re.compile(r"SIGINT: admitting no more"), 30) is not None
    assert process.poll() is None  # the held runs are still in flight: it waits for them
    process.send_signal(signal.SIGINT)
    cancelling = re.compile(rf"SIGINT: cancelling {counted or active} runs")
    assert stderr.wait_for(cancelling, 30) is not None
    assert process.wait(30) == 130
    assert process.stdout is not None
    process.stdout.close()
    stderr.rest()


def test_first_ctrl_c_stops_admitting_and_the_second_cancels_runs_in_flight(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    lines = [json.dumps({"text": f"t{n}", "hold": n < 2}) for n in range(12)]
    _write_inputs(project.root / "in.jsonl", lines)
    args = ("batch", "held", "in.jsonl", "--output", "out.jsonl", "--concurrency", "2")
    interrupt_twice(project, project.start(*args), active=2)
    rows = _outputs(project.root / "out.jsonl")
    assert sorted(row["line"] for row in rows) == [1, 2]
    assert {row["status"] for row in rows} == {"errored"}
    assert {row["error"]["type"] for row in rows} == {"run_cancelled"}
    assert len(project.all_runs()) == 2  # nothing past the first Ctrl-C was admitted
    # Run again: the cancelled lines stay answered (and fail the batch), the rest runs.
    result = project.run(*args)
    assert result.returncode == 1, describe(result)
    assert "10 completed, 0 failed" in result.stderr
    assert "2 already in the output, 2 of them failed" in result.stderr
    assert sorted(row["line"] for row in _outputs(project.root / "out.jsonl")) == list(range(1, 13))
