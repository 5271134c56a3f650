"""``flue-actors run`` and ``runs get|events`` with input holding a lone surrogate and a NUL: the
run completes and every command prints it back as JSON escapes (stdout is strict UTF-8 here, so
a raw surrogate would crash the command)."""

from __future__ import annotations

import json

from .conftest import Project, describe, run_id_of


def test_a_run_of_awkward_text_completes_and_prints_back(project: Project) -> None:
    awkward = "\ud800 \x00 \udfff é 😀"
    result = project.run("run", "summarize", "--input", json.dumps({"text": awkward}))
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout) == {"summary": awkward}
    run_id = run_id_of(result.stderr)

    record = project.get_run(run_id)
    assert record["status"] == "completed"
    assert record["input"] == {"text": awkward}
    events = [json.loads(line) for line in project.event_lines(run_id)]
    assert [event["eventIndex"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] == "run_end"
    assert events[-1]["result"] == {"summary": awkward}
