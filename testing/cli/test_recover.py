"""``flue-actors runs recover`` through the real command: a run whose process was killed is
resumed by replay in the recovering process until it ends (``--end`` ends it instead; on both
stores in ``testing/e2e/test_cli.py``)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .conftest import describe
from .test_batch import _project


def test_runs_recover_resumes_a_killed_run_until_it_ends(tmp_path: Path) -> None:
    project = _project(tmp_path)  # the "held" workflow holds while the file "hold" exists
    process = project.start("run", "held", "--input", json.dumps({"text": "x", "hold": True}))
    deadline = time.monotonic() + 30
    while not (active := project.list_runs("--status", "active")["runs"]):
        assert time.monotonic() < deadline, "the run never started"
        assert process.poll() is None, process.communicate()
    run_id = active[0]["runId"]
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    (project.root / "hold").unlink()
    # Nothing to take over while the killed process's lease may still run.
    early = project.run("runs", "recover", "--lease-seconds", "30")
    assert (early.returncode, early.stdout) == (0, ""), describe(early)
    time.sleep(3.5)  # its last heartbeat is now older than the lease below
    recovered = project.run("runs", "recover", "--lease-seconds", "3", timeout=60)
    assert recovered.returncode == 0, describe(recovered)
    assert recovered.stdout == run_id + "\n", describe(recovered)
    assert recovered.stderr.endswith("resumed 1 and ended 0 orphaned runs\n"), describe(recovered)
    record = project.get_run(run_id)
    assert (record["status"], record["result"]) == ("completed", "X")
    kinds = [json.loads(line)["type"] for line in project.event_lines(run_id)]
    assert kinds.count("run_resume") == 1
    assert kinds[-1] == "run_end"
    again = project.run("runs", "recover", "--lease-seconds", "3")
    assert (again.returncode, again.stdout) == (0, ""), describe(again)
    assert again.stderr == "resumed 0 and ended 0 orphaned runs\n", describe(again)
