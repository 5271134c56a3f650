"""Requests refused before admission: a typed error on stderr, exit 1, and no run at all.
Malformed command lines are argparse's: a usage message and exit 2."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import Project, describe, error_types, make_project


@dataclass(frozen=True)
class Refusal:
    args: Sequence[str]
    type: str
    mentions: Sequence[str]


REFUSALS: Mapping[str, Refusal] = {
    "malformed-json": Refusal(("run", "summarize", "--input", "{bad"), "invalid_json", ["--input"]),
    "schema-mismatch": Refusal(
        ("run", "summarize", "--input", '{"txt":"hello"}'), "action_input_validation", ["text"]
    ),
    "wrong-json-type": Refusal(
        ("run", "summarize", "--input", '"hello"'), "action_input_validation", []
    ),
    "missing-input": Refusal(("run", "summarize"), "action_input_validation", ["text"]),
    "unexpected-input": Refusal(
        ("run", "nothing", "--input", '{"a":1}'), "workflow_input_unexpected", ["nothing"]
    ),
    "unknown-workflow": Refusal(("run", "nosuch"), "workflow_not_found", ["nosuch", "summarize"]),
    "no-workflow-defined": Refusal(
        ("run", "noworkflow"), "workflow_load_failed", ["noworkflow", "define_workflow"]
    ),
    "raises-on-import": Refusal(
        ("run", "boom"), "workflow_load_failed", ["boom", "RuntimeError", "boom at import"]
    ),
}


@dataclass
class Refused:
    project: Project
    results: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Refused:
    project = make_project(tmp_path_factory.mktemp("refusals"))
    return Refused(project, {key: project.run(*case.args) for key, case in REFUSALS.items()})


@pytest.mark.parametrize("key", list(REFUSALS))
def test_a_refused_request_is_a_typed_error(refused: Refused, key: str) -> None:
    case = REFUSALS[key]
    result = refused.results[key]
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), describe(result)
    assert error_types(result.stderr) == [case.type], describe(result)
    for text in case.mentions:
        assert text in result.stderr, f"{text!r} not mentioned\n{describe(result)}"
    assert "Traceback" not in result.stderr, describe(result)
    # Refused before admission: no run was started, so no `run run_...` row.
    assert re.search(r"^run run_", result.stderr, re.MULTILINE) is None, describe(result)


def test_refused_requests_create_no_run(refused: Refused) -> None:
    assert refused.project.list_runs() == {"runs": []}


def test_a_broken_module_does_not_hide_the_other_workflows(refused: Refused) -> None:
    """``boom.py`` and ``noworkflow.py`` sit in the same folder as ``summarize.py``."""
    result = refused.project.run("run", "summarize", "--input", '{"text":"hello"}')
    assert result.returncode == 0, describe(result)
    assert result.stdout == '{"summary":"hello"}\n'


USAGE_ERRORS: Mapping[str, Sequence[str]] = {
    "no-command": (),
    "unknown-command": ("bogus",),
    "run-without-name": ("run",),
    "run-unknown-option": ("run", "summarize", "--bogus"),
    "runs-without-verb": ("runs",),
    "runs-unknown-verb": ("runs", "bogus"),
    "get-without-id": ("runs", "get"),
    "limit-not-a-number": ("runs", "list", "--limit", "x"),
    "unknown-status": ("runs", "list", "--status", "weird"),
}


@pytest.mark.parametrize("key", list(USAGE_ERRORS))
def test_a_malformed_command_line_exits_2(tmp_path: Path, key: str) -> None:
    project = make_project(tmp_path, workflows=["summarize"])
    result = project.run(*USAGE_ERRORS[key])
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("usage: flue-actors"), describe(result)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs.db").exists(), "a usage error touched the store"
