"""Interrupting ``flue-actors run``: the exit code is 128 + the signal, and the run still ends
(errored, ``run_cancelled``) before the command exits."""

from __future__ import annotations

import json
import re
import signal
import sys

import pytest

from .conftest import LineReader, Project, error_types, make_project

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

RUN_ROW = re.compile(r"^run (run_\S+)$")


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupted_run_is_cancelled_and_ended(
    tmp_path_factory: pytest.TempPathFactory, signum: signal.Signals, code: int
) -> None:
    project: Project = make_project(tmp_path_factory.mktemp(signum.name), workflows=["hang"])
    process = project.start("run", "hang")
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        stderr = LineReader(process.stderr)
        started = stderr.wait_for(RUN_ROW, timeout=10)
        assert started is not None, f"no `run run_...` row:\n{stderr.rest(1)}"
        run_id = started.group(1)
        process.send_signal(signum)
        returncode = process.wait(timeout=15)
        with process.stdout:
            stdout = process.stdout.read()
        text = stderr.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert returncode == code, f"exit {returncode}\n{text}"
    assert stdout == ""
    assert "Traceback" not in text, text
    assert error_types(text) == ["run_cancelled"], text

    record = project.get_run(run_id)
    assert record["status"] == "errored", record
    assert record["isError"] is True
    assert record["error"]["type"] == "run_cancelled", record
    events = [json.loads(line) for line in project.event_lines(run_id)]
    assert [events[0]["type"], events[-1]["type"]] == ["run_start", "run_end"]
    assert events[-1]["error"]["type"] == "run_cancelled"
    runs = project.all_runs()
    assert [(run["runId"], run["status"]) for run in runs] == [(run_id, "errored")]
