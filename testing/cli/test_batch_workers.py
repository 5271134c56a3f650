"""``flue-actors batch --workers N`` through the real command: the lines run in worker
processes on one store, each line is answered once, and killing a worker or the command loses
nothing and runs nothing twice. (The one rate-limit budget over every worker is tested with the
single-process batch's, in ``test_batch.py``.)"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e.support import drop_schema, postgres_url

from .conftest import Project, describe
from .test_batch import _outputs, _project, _wait_for_lines, _write_inputs, interrupt_twice

SHORT_LEASE = ("--lease-seconds", "3", "--sweep-seconds", "0.5")


def _workers_of(parent: int) -> list[int]:
    """The pids of the command's worker processes (not multiprocessing's resource tracker,
    which a spawning command starts)."""
    found = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    tracker = b"resource_tracker"
    return [pid for pid in pids if tracker not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _owner_pids_of_active_runs(project: Project) -> set[int]:
    """The pids of the processes owning the store's active runs (owners are
    ``local:HOST:PID:...``)."""
    with sqlite3.connect(project.root / "runs.db") as db:
        owners = db.execute(
            "SELECT o.owner FROM run_owners o JOIN runs r ON r.run_id = o.run_id "
            "WHERE r.status = 'active'"
        ).fetchall()
    return {int(owner.split(":")[2]) for (owner,) in owners}


HELD_BATCH = ("batch", "held", "in.jsonl", "--output", "out.jsonl", "--workers", "2")


def _held_batch(
    project: Project, lines: int, held: set[int]
) -> tuple[subprocess.Popen[str], list[int]]:
    """``held`` on two workers over ``lines`` lines, those numbered in ``held`` (from 0) held
    in flight: the command, once every other line is answered, and its two workers' pids."""
    inputs = [json.dumps({"text": f"t{n}", "hold": n in held}) for n in range(lines)]
    _write_inputs(project.root / "in.jsonl", inputs)
    process = project.start(*HELD_BATCH, *SHORT_LEASE)
    _wait_for_lines(project.root / "out.jsonl", lines - len(held), process)
    workers = _workers_of(process.pid)
    assert len(workers) == 2, workers
    return process, workers


def _gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_workers_answer_every_line_once_with_errors_for_bad_lines(tmp_path: Path) -> None:
    project = _project(tmp_path)
    good = [json.dumps({"text": f"doc {n}"}) for n in range(600)]
    _write_inputs(project.root / "in.jsonl", [*good, "{not json", '{"nope": 1}'])
    args = ("batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--workers", "3")
    result = project.run(*args, timeout=60)
    assert result.returncode == 1, describe(result)  # two lines failed
    assert "600 completed, 2 failed" in result.stderr, describe(result)
    rows = _outputs(project.root / "out.jsonl")
    assert sorted(row["line"] for row in rows) == list(range(1, 603))
    by_line = {row["line"]: row for row in rows}
    assert by_line[5]["result"] == {"summary": "doc 4"}
    assert by_line[601]["error"]["type"] == "invalid_json"
    assert by_line[602]["status"] == "errored"
    # The workers shared them.
    with sqlite3.connect(project.root / "runs.db") as db:
        owners = db.execute("SELECT count(DISTINCT owner), count(*) FROM run_owners").fetchone()
    # (Whichever asks first is handed lines: under load one of three may get none.)
    assert owners[0] >= 2, owners
    assert owners[1] == 600, owners
    # Run again: everything is in the output already.
    again = project.run(*args, timeout=60)
    assert again.returncode == 1, describe(again)
    assert "602 already in the output, 2 of them failed" in again.stderr


# A workflow module that says which processes imported it, and with THREAD starts a thread in
# the command as it is imported. A spawned worker imports it again as it discovers the
# workflows; a forked one is a copy of the command, the module imported already.
WHO_IMPORTS = """\
import os
import threading
from pathlib import Path

with Path("imported-by").open("a") as file:
    file.write(f"{os.getpid()} {Path('/proc/self/cmdline').read_bytes()!r}\\n")
if THREAD:
    threading.Thread(target=threading.Event().wait, daemon=True).start()
"""


@pytest.mark.parametrize("thread", [False, True], ids=["one-thread", "with-a-thread"])
def test_workers_are_forked_unless_the_command_has_other_threads(
    tmp_path: Path, thread: bool
) -> None:
    project = _project(tmp_path)
    module = WHO_IMPORTS.replace("THREAD", repr(thread))
    (project.root / "workflows" / "who_imports.py").write_text(module, encoding="utf-8")
    _write_inputs(project.root / "in.jsonl", [json.dumps({"text": f"d{n}"}) for n in range(50)])
    args = ("batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--workers", "2")
    result = project.run(*args, timeout=60)
    assert result.returncode == 0, describe(result)
    assert sorted(row["line"] for row in _outputs(project.root / "out.jsonl")) == list(range(1, 51))
    command, *workers = (project.root / "imported-by").read_text(encoding="utf-8").splitlines()
    assert "spawn_main" not in command
    if thread:
        assert len(workers) == 2, workers
        assert all("spawn_main" in worker for worker in workers), workers
    else:
        assert workers == []


def test_workers_fork_only_while_the_process_has_one_thread() -> None:
    check = (
        "import threading; from flue_actors._process import worker_context as context; "
        "print(context().get_start_method()); "
        "threading.Thread(target=threading.Event().wait, daemon=True).start(); "
        "print(context().get_start_method())"
    )
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert found.stdout.split() == ["fork", "spawn"], found.stderr


def test_workers_share_a_postgresql_store(tmp_path: Path) -> None:
    project = _project(tmp_path)
    schema = "batch_workers_" + os.urandom(6).hex()
    env: dict[str, str | None] = {"FLUE_DATABASE_URL": postgres_url(schema)}
    _write_inputs(project.root / "in.jsonl", [json.dumps({"text": f"d{n}"}) for n in range(300)])
    args = ("batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--workers", "2")
    try:
        result = project.run(*args, env=env, timeout=60)
        assert result.returncode == 0, describe(result)
        rows = _outputs(project.root / "out.jsonl")
        assert sorted(row["line"] for row in rows) == list(range(1, 301))
        listed = project.run("runs", "list", "--json", "--limit", "1000", env=env)
        assert listed.returncode == 0, describe(listed)
        runs = json.loads(listed.stdout)["runs"]
        assert {run["runId"] for run in runs} == {row["runId"] for row in rows}
    finally:
        drop_schema(schema)


def test_workers_are_refused_where_they_cannot_share_the_batch(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _write_inputs(project.root / "in.jsonl", [json.dumps({"text": "a"})])
    base = ("batch", "summarize", "in.jsonl", "--output", "out.jsonl", "--workers", "2")
    memory: dict[str, str | None] = {"FLUE_DATABASE_URL": "sqlite:///:memory:"}
    refusals: dict[str, tuple[tuple[str, ...], dict[str, str | None]]] = {
        "--workers needs the local backend": (("--backend", "ray"), {}),
        "an in-memory SQLite store is not": ((), memory),
        "--model-batches collects the turns of one process": (("--model-batches",), {}),
    }
    for message, (extra, env) in refusals.items():
        result = project.run(*base, *extra, env=env)
        assert result.returncode == 2, describe(result)
        assert message in result.stderr, describe(result)
    assert not (project.root / "out.jsonl").exists()


def test_a_worker_killed_mid_batch_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # Four lines are held in flight until the "hold" file goes; the rest end at once.
    process, workers = _held_batch(project, 40, {3, 13, 23, 33})
    out = project.root / "out.jsonl"
    holding = _owner_pids_of_active_runs(project) & set(workers)
    assert holding, "no worker holds a run in flight"
    victim = sorted(holding)[0]
    os.kill(victim, signal.SIGKILL)
    (project.root / "hold").unlink()
    # The other worker takes the dead one's lines: their keys find its runs, which its lease
    # sweep resumes once the dead owner's lease has expired.
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    rows = _outputs(out)
    assert sorted(row["line"] for row in rows) == list(range(1, 41))
    assert {row["status"] for row in rows} == {"completed"}
    assert {row["result"] for row in rows if row["line"] % 10 == 4} == {"T3", "T13", "T23", "T33"}
    runs = project.all_runs()
    assert len(runs) == 40  # one run per line, whichever worker had it
    assert {row["runId"] for row in rows} == {run["runId"] for run in runs}


def test_a_killed_command_takes_its_workers_and_a_rerun_finishes(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first, workers = _held_batch(project, 30, {3, 7})
    out = project.root / "out.jsonl"
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert _gone(workers, 10), "the workers outlived the command"
    (project.root / "hold").unlink()
    result = project.run(*HELD_BATCH, *SHORT_LEASE, timeout=60)
    assert result.returncode == 0, describe(result)
    assert "28 already in the output" in result.stderr, describe(result)
    assert "2 found from an earlier batch" in result.stderr, describe(result)
    rows = _outputs(out)
    assert sorted(row["line"] for row in rows) == list(range(1, 31))
    assert len(project.all_runs()) == 30


def test_first_ctrl_c_stops_every_worker_admitting_and_the_second_cancels(tmp_path: Path) -> None:
    project = _project(tmp_path)
    lines = [json.dumps({"text": f"t{n}", "hold": n < 2}) for n in range(12)]
    _write_inputs(project.root / "in.jsonl", lines)
    args = ("batch", "held", "in.jsonl", "--output", "out.jsonl", "--concurrency", "4")
    # Both held runs are on one worker (its first handout took all 12 lines, two slots each).
    # The command counts the runs its workers last reported (every 0.25 s): maybe not both yet.
    interrupt_twice(project, project.start(*args, "--workers", "2"), active=2, counted=r"\d+")
    rows = _outputs(project.root / "out.jsonl")
    held = [row for row in rows if row["line"] in (1, 2)]
    assert {row["error"]["type"] for row in held} == {"run_cancelled"}
    # Run again: the rest runs; the cancelled lines stay answered (and fail the batch).
    result = project.run(*args, "--workers", "2", timeout=60)
    assert result.returncode == 1, describe(result)
    assert sorted(row["line"] for row in _outputs(project.root / "out.jsonl")) == list(range(1, 13))
