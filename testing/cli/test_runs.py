"""``flue-actors runs list|get|events|rebuild``: inspecting the runs ``flue-actors run`` made."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
from pathlib import Path

from flue_actors.store import StoredEvent, open_store, parse_offset, run_stream

from .conftest import SHARED_RUNS, Shared, describe, error_types, make_project, run_id_of

POINTER_KEYS = ("runId", "workflowName", "status", "startedAt", "endedAt", "durationMs", "isError")


# --- runs list ----------------------------------------------------------------------------------


def test_list_json_is_one_line_holding_every_run_newest_first(shared: Shared) -> None:
    result = shared.project.ok("runs", "list", "--json")
    assert result.stdout.endswith("\n"), describe(result)
    assert result.stdout.count("\n") == 1, describe(result)
    page = json.loads(result.stdout)
    assert set(page) == {"runs"}, "one page holds every run: no nextCursor"
    assert [run["runId"] for run in page["runs"]] == list(reversed(shared.order))
    started = [run["startedAt"] for run in page["runs"]]
    assert started == sorted(started, reverse=True)


def test_list_json_agrees_with_runs_get(shared: Shared) -> None:
    for pointer in shared.project.all_runs():
        record = shared.records[pointer["runId"]]
        assert pointer == {key: record[key] for key in POINTER_KEYS if key in record}


def test_list_as_a_table(shared: Shared) -> None:
    result = shared.project.ok("runs", "list")
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"], header
    assert len(rows) == len(shared.order)
    for row, run_id in zip(rows, reversed(shared.order), strict=True):
        record = shared.records[run_id]
        assert row.split()[:4] == [
            run_id,
            record["workflowName"],
            record["status"],
            record["startedAt"],
        ]
    assert result.stderr == "", "no `more:` hint when everything fits on one page"


def test_list_filters_by_status_and_workflow(shared: Shared) -> None:
    errored = shared.project.list_runs("--status", "errored")
    assert [run["runId"] for run in errored["runs"]] == [
        shared.run_id("setresult"),
        shared.run_id("fails"),
    ]
    summarize = shared.project.list_runs("--workflow", "summarize")
    assert [run["runId"] for run in summarize["runs"]] == [
        shared.run_id("unicode"),
        shared.run_id("summarize"),
    ]


def test_list_pages_with_limit_and_cursor(shared: Shared) -> None:
    assert len(shared.order) == len(SHARED_RUNS) == 6
    pages = [shared.project.list_runs("--limit", "4")]
    assert len(pages[0]["runs"]) == 4
    assert isinstance(pages[0].get("nextCursor"), str), pages[0]
    pages.append(shared.project.list_runs("--limit", "4", "--cursor", pages[0]["nextCursor"]))
    assert len(pages[1]["runs"]) == 2
    assert "nextCursor" not in pages[1], pages[1]
    listed = [run["runId"] for page in pages for run in page["runs"]]
    assert listed == list(reversed(shared.order))


def test_list_as_a_table_hints_at_the_next_page(shared: Shared) -> None:
    result = shared.project.ok("runs", "list", "--limit", "1")
    assert len(result.stdout.splitlines()) == 2, result.stdout
    assert result.stdout.splitlines()[1].split()[0] == shared.order[-1]
    match = re.fullmatch(r"more: flue-actors runs list --cursor (\S+)\n", result.stderr)
    assert match is not None, describe(result)
    following = shared.project.list_runs("--limit", "1", "--cursor", match.group(1))
    assert [run["runId"] for run in following["runs"]] == [shared.order[-2]]


# --- runs get -----------------------------------------------------------------------------------


def test_get_prints_the_record_as_json(shared: Shared) -> None:
    run_id = shared.run_id("chatty")
    record = shared.records[run_id]
    assert record["runId"] == run_id
    assert record["workflowName"] == "chatty"
    assert record["status"] == "completed"
    assert record["result"] == {"ok": True}
    assert isinstance(record["durationMs"], int)
    assert record["endedAt"] >= record["startedAt"]


def test_get_an_unknown_run_exits_1_with_run_not_found(shared: Shared) -> None:
    result = shared.project.run("runs", "get", "run_01NOSUCHRUN0000000000000000")
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), describe(result)
    assert "run_01NOSUCHRUN0000000000000000" in result.stderr
    assert error_types(result.stderr) == ["run_not_found"], describe(result)


# --- runs events --------------------------------------------------------------------------------


def test_events_prints_one_json_object_per_line_from_run_start_to_run_end(shared: Shared) -> None:
    for key in shared.run_ids:
        run_id = shared.run_id(key)
        lines = shared.events[run_id]
        events = [json.loads(line) for line in lines]
        assert all(isinstance(event, dict) for event in events)
        assert events[0]["type"] == "run_start", key
        assert events[-1]["type"] == "run_end", key
        assert [event["type"] for event in events].count("run_end") == 1, key
        assert [event["eventIndex"] for event in events] == list(range(len(events))), key
        assert {event["runId"] for event in events} == {run_id}, key
        assert events[0]["workflowName"] == shared.records[run_id]["workflowName"]
        assert events[-1]["isError"] == shared.records[run_id]["isError"]


def _stored(url: str | None, run_id: str) -> list[StoredEvent]:
    async def read() -> list[StoredEvent]:
        store = open_store(url)
        try:
            page = await store.read(run_stream(run_id), offset="-1", limit=1000)
            assert page.up_to_date
            return page.events
        finally:
            await store.close()

    return asyncio.run(read())


def test_events_follow_the_stored_offsets(shared: Shared) -> None:
    run_id = shared.run_id("summarize")
    lines = shared.events[run_id]
    stored = _stored(shared.project.database_url, run_id)
    assert lines == [event.raw for event in stored]
    sequences = [parse_offset(event.offset) for event in stored]
    assert sequences == sorted(set(sequences)), "offsets strictly increase"
    # --offset resumes strictly after the given event.
    middle = len(stored) // 2
    tail = shared.project.event_lines(run_id, "--offset", stored[middle].offset)
    assert tail == lines[middle + 1 :]
    assert shared.project.event_lines(run_id, "--offset", stored[-1].offset) == []


def test_events_into_a_closed_pipe_end_quietly_as_a_shell_expects(shared: Shared) -> None:
    # `flue-actors runs events RUN | head -0`: the reader is gone before the first line.
    process = shared.project.start("runs", "events", shared.run_id("summarize"))
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGPIPE, stderr
    assert stderr == ""


def test_events_of_an_unknown_run_exit_1_with_run_not_found(shared: Shared) -> None:
    result = shared.project.run("runs", "events", "run_01NOSUCHRUN0000000000000000")
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert error_types(result.stderr) == ["run_not_found"], describe(result)


def test_events_with_a_malformed_offset_exit_1(shared: Shared) -> None:
    result = shared.project.run("runs", "events", shared.run_id("nothing"), "--offset", "bogus")
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert error_types(result.stderr) == ["invalid_request"], describe(result)


# --- runs rebuild -------------------------------------------------------------------------------


def test_rebuild_refolds_the_records_from_the_log(tmp_path: Path) -> None:
    project = make_project(tmp_path, workflows=["summarize", "fails"])
    ids = [
        run_id_of(project.run("run", "summarize", "--input", '{"text":"hello"}').stderr),
        run_id_of(project.run("run", "fails").stderr),
    ]
    before = [project.ok("runs", "get", run_id).stdout for run_id in ids]
    listing = project.ok("runs", "list", "--json").stdout
    # Lose the projection: only the log is left to rebuild it from.
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("DELETE FROM runs")
    db.close()
    rebuilt = project.ok("runs", "rebuild")
    assert rebuilt.stdout == ""
    assert re.fullmatch(r"rebuilt 2 run records? from the log\n", rebuilt.stderr), rebuilt.stderr
    assert [project.ok("runs", "get", run_id).stdout for run_id in ids] == before
    assert project.ok("runs", "list", "--json").stdout == listing
