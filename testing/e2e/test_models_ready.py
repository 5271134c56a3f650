"""``flue-actors batch`` and ``serve`` get the model providers their workflows name ready at
start-up, before taking work: the Anthropic SDK is imported (and its client made) then, not in
the first run; a process whose workflows use no Anthropic model never imports it.

Observed without timing: Python's own import log (``PYTHONPROFILEIMPORTTIME``, on stderr)
against the command's ``model providers ready`` line and its first run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flue_actors.testing.messages_server import MessagesServer

from .support import Project, Serve, invoke

READY = "model providers ready: anthropic"
# The import log's line for the top-level package itself (its submodules are indented deeper).
SDK_IMPORTED = re.compile(r"^import time:.*\|\s{1,2}anthropic$")


def _inputs(root: Path, count: int) -> Path:
    inputs = root / "in.jsonl"
    lines = (json.dumps({"text": f"document {n}"}) for n in range(count))
    inputs.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return inputs


def test_batch_imports_the_sdk_before_its_first_run(
    tmp_path: Path, messages_server: MessagesServer
) -> None:
    project = Project.create(tmp_path, f"sqlite:///{tmp_path / 'flue.db'}", messages_server)
    project.env["PYTHONPROFILEIMPORTTIME"] = "1"
    inputs = _inputs(tmp_path, 3)
    result = project.ok("batch", "summarize", str(inputs), "--output", "out.jsonl")
    lines = result.stderr.splitlines()
    imported = [n for n, line in enumerate(lines) if SDK_IMPORTED.match(line)]
    ready = [n for n, line in enumerate(lines) if line == READY]
    assert len(imported) == 1, result.stderr[-3000:]
    assert len(ready) == 1, result.stderr[-3000:]
    assert imported[0] < ready[0]
    # Nothing of the SDK is imported after the line: the runs found it loaded.
    assert not any("| anthropic" in line for line in lines[ready[0] :])
    assert len(messages_server.requests()) == 3
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").count("\n") == 3


def test_batch_on_the_echo_model_never_imports_the_sdk(tmp_path: Path) -> None:
    project = Project.create(tmp_path, f"sqlite:///{tmp_path / 'flue.db'}", None)
    project.env.update({"FLUE_MODEL": "fake/echo", "PYTHONPROFILEIMPORTTIME": "1"})
    inputs = _inputs(tmp_path, 2)
    result = project.ok("batch", "summarize", str(inputs), "--output", "out.jsonl")
    assert READY not in result.stderr
    assert not any(SDK_IMPORTED.match(line) for line in result.stderr.splitlines())
    assert "2 completed" in result.stderr


def test_serve_is_ready_before_it_listens(tmp_path: Path, messages_server: MessagesServer) -> None:
    project = Project.create(tmp_path, f"sqlite:///{tmp_path / 'flue.db'}", messages_server)
    serve = Serve(project)
    try:
        serve.start()
        lines = serve.output().splitlines()
        ready = lines.index(READY)
        assert any(line.startswith("serving summarize on ") for line in lines[ready + 1 :])
        with serve.client() as http:
            response = invoke(http, "hello", wait=True)
        assert response.status_code == 200, response.text
        assert "SUMMARY: hello" in response.text
    finally:
        serve.kill()
