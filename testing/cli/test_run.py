"""``flue-actors run NAME``: stdout carries only the result, stderr the events, the exit code the
outcome (reference 1.20); the store is chosen by ``FLUE_DATABASE_URL``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .conftest import (
    WORKFLOW_SOURCES,
    Shared,
    describe,
    error_types,
    make_project,
    run_id_of,
    stderr_lines,
)


def assert_subsequence(lines: Sequence[str], expected: Sequence[str], where: str) -> None:
    """``expected`` appears in ``lines`` in this order (other lines may come between)."""
    position = 0
    for line in lines:
        if position < len(expected) and line == expected[position]:
            position += 1
    assert position == len(expected), f"missing {expected[position]!r} (in order) in:\n{where}"


def assert_ended(shared: Shared, key: str) -> list[dict[str, object]]:
    """The run ``key`` made was ended: its stream starts with run_start, ends with run_end."""
    run_id = shared.run_id(key)
    assert run_id in shared.events, f"`runs events {run_id}` failed"
    events = [json.loads(line) for line in shared.events[run_id]]
    assert events, f"{key}: no events"
    assert events[0]["type"] == "run_start"
    assert events[-1]["type"] == "run_end"
    return events


# --- success ------------------------------------------------------------------------------------


def test_success_prints_the_result_as_one_json_line(shared: Shared) -> None:
    result = shared.result("summarize")
    assert result.returncode == 0, describe(result)
    assert result.stdout == '{"summary":"hello"}\n'


def test_success_shows_the_events_on_stderr(shared: Shared) -> None:
    result = shared.result("summarize")
    run_id = run_id_of(result.stderr)
    lines = stderr_lines(result)
    assert_subsequence(
        lines,
        ["workflow summarize", f"run {run_id}", "assistant", "  hello", "workflow completed"],
        result.stderr,
    )
    assert lines[-1] == "workflow completed", result.stderr
    assert not any(line.startswith("Workflow failed") for line in lines), result.stderr
    assert "\x1b[" not in result.stderr, "no colour codes when stderr is not a terminal"


def test_success_is_recorded(shared: Shared) -> None:
    run_id = shared.run_id("summarize")
    record = shared.records[run_id]
    assert record["runId"] == run_id
    assert record["workflowName"] == "summarize"
    assert record["status"] == "completed"
    assert record["isError"] is False
    assert record["input"] == {"text": "hello"}
    assert record["result"] == {"summary": "hello"}
    assert "error" not in record
    events = assert_ended(shared, "summarize")
    assert events[-1]["result"] == {"summary": "hello"}
    assert events[-1]["isError"] is False


def test_multiline_unicode_result_stays_one_line(shared: Shared) -> None:
    result = shared.result("unicode")
    assert result.returncode == 0, describe(result)
    assert result.stdout == '{"summary":"héllo\\nwörld ☃"}\n'
    assert json.loads(result.stdout) == {"summary": "héllo\nwörld ☃"}
    assert_subsequence(stderr_lines(result), ["assistant", "  héllo", "  wörld ☃"], result.stderr)


def test_a_none_result_prints_nothing_on_stdout(shared: Shared) -> None:
    result = shared.result("nothing")
    assert result.returncode == 0, describe(result)
    assert result.stdout == ""
    assert stderr_lines(result)[-1] == "workflow completed", result.stderr
    record = shared.records[shared.run_id("nothing")]
    assert record["status"] == "completed"
    assert record["result"] is None
    assert_ended(shared, "nothing")


def test_logs_are_shown_on_stderr(shared: Shared) -> None:
    result = shared.result("chatty")
    assert result.returncode == 0, describe(result)
    assert result.stdout == '{"ok":true}\n'
    run_id = run_id_of(result.stderr)
    assert_subsequence(
        stderr_lines(result),
        [f"run {run_id}", "info step one", "info step two", "workflow completed"],
        result.stderr,
    )
    logs = [json.loads(line) for line in shared.events[run_id]]
    assert [(e["level"], e["message"]) for e in logs if e["type"] == "log"] == [
        ("info", "step one"),
        ("info", "step two"),
    ]


# --- failure ------------------------------------------------------------------------------------


def test_a_failing_workflow_exits_1_with_the_error_on_stderr(shared: Shared) -> None:
    result = shared.result("fails")
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    failed = [line for line in stderr_lines(result) if line.startswith("Workflow failed: ")]
    assert len(failed) == 1, result.stderr
    assert "it broke" in failed[0]
    assert "workflow completed" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_run_is_recorded_as_errored_and_ended(shared: Shared) -> None:
    record = shared.records[shared.run_id("fails")]
    assert record["status"] == "errored"
    assert record["isError"] is True
    assert "it broke" in record["error"]["message"]
    events = assert_ended(shared, "fails")
    assert events[-1]["isError"] is True


def test_a_non_json_result_is_a_typed_failure(shared: Shared) -> None:
    result = shared.result("setresult")
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert any(line.startswith("Workflow failed: ") for line in stderr_lines(result)), result.stderr
    assert error_types(result.stderr) == ["action_output_serialization"], result.stderr
    assert "Traceback" not in result.stderr
    record = shared.records[shared.run_id("setresult")]
    assert record["status"] == "errored"
    assert record["error"]["type"] == "action_output_serialization"
    events = assert_ended(shared, "setresult")
    assert events[-1]["isError"] is True


def test_every_admitted_run_ended(shared: Shared) -> None:
    """No run made by ``flue-actors run`` is left active, and the listing holds exactly them."""
    runs = shared.project.all_runs()
    assert sorted(run["runId"] for run in runs) == sorted(shared.order)
    assert [run["runId"] for run in runs if run["status"] == "active"] == []
    for key in shared.run_ids:
        assert_ended(shared, key)


# --- the store ----------------------------------------------------------------------------------


def test_the_default_store_is_dot_flue_under_the_working_directory(tmp_path: Path) -> None:
    project = make_project(tmp_path, workflows=["summarize"], database=False)
    assert "FLUE_DATABASE_URL" not in project.env
    made = project.run("run", "summarize", "--input", '{"text":"hello"}')
    assert made.returncode == 0, describe(made)
    assert made.stdout == '{"summary":"hello"}\n'
    assert (tmp_path / ".flue" / "flue.db").is_file()
    runs = project.all_runs()
    assert [(run["runId"], run["status"]) for run in runs] == [
        (run_id_of(made.stderr), "completed")
    ]


def test_flue_database_url_chooses_the_store(shared: Shared, tmp_path: Path) -> None:
    assert not (shared.project.root / ".flue").exists(), "runs went to the default store"
    assert (shared.project.root / "runs.db").is_file()
    other = shared.project.run(
        "runs", "list", "--json", env={"FLUE_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    )
    assert other.returncode == 0, describe(other)
    assert json.loads(other.stdout) == {"runs": []}


# --- discovery ----------------------------------------------------------------------------------


def test_the_workflows_option_names_the_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path, workflows=["summarize"], folder="flows")
    made = project.run("run", "summarize", "--workflows", "flows", "--input", '{"text":"hello"}')
    assert made.returncode == 0, describe(made)
    assert made.stdout == '{"summary":"hello"}\n'
    # Without it, ./workflows is looked for, and is not there.
    missing = project.run("run", "summarize", "--input", '{"text":"hello"}')
    assert missing.returncode == 1, describe(missing)
    assert missing.stdout == ""
    assert missing.stderr.startswith("error: "), describe(missing)
    assert "workflows" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert [run["runId"] for run in project.all_runs()] == [run_id_of(made.stderr)]


def test_the_file_name_is_the_workflow_name(tmp_path: Path) -> None:
    """``workflows/digest.py`` runs as ``digest``, whatever its function is called."""
    project = make_project(tmp_path, workflows=[])
    source = WORKFLOW_SOURCES["summarize"]
    (tmp_path / "workflows" / "digest.py").write_text(source, encoding="utf-8")
    made = project.run("run", "digest", "--input", '{"text":"hello"}')
    assert made.returncode == 0, describe(made)
    assert made.stdout == '{"summary":"hello"}\n'
    assert "workflow digest" in stderr_lines(made)
    record = project.get_run(run_id_of(made.stderr))
    assert record["workflowName"] == "digest"
