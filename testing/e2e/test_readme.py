"""The README's commands, read from the README itself and run as written (the ``flue-actors``
part; ``pip install`` is how this suite got here), so the README cannot drift from what works.

The one liberty: the serve example's port 8000 becomes a free port, since other servers on a
shared machine may hold 8000.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Final

import httpx
import pytest

from flue_actors.testing.messages_server import READY_PREFIX, MessagesServer

from .support import REPO, Project, Serve, describe

README: Final = (REPO / "README.md").read_text(encoding="utf-8")
_FENCE: Final = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_RUN_ID: Final = "run_01[0-9A-HJKMNP-TV-Z]{24}"


def _blocks_after(heading: str) -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of the README section under ``heading``."""
    start = README.index(heading)
    following = README.find("\n## ", start + len(heading))
    section = README[start : following if following != -1 else len(README)]
    return [(match.group(1), match.group(2)) for match in _FENCE.finditer(section)]


def _command(line: str) -> tuple[dict[str, str], list[str]]:
    """The ``flue-actors`` command of a shell line: its ``NAME=value`` prefix and arguments."""
    part = next(piece for piece in line.split("&&") if "flue-actors" in piece)
    words = shlex.split(part)
    env: dict[str, str] = {}
    while "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "flue-actors", line
    return env, words[1:]


def _project(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Project:
    """As from the repository root: workflows/ holds the README's summarize.py, the store is
    the default one (.flue/flue.db), and no provider is configured beyond the command's own."""
    project = Project.create(tmp_path_factory.mktemp("readme"), None, None)
    project.env.update(env)
    return project


def test_quick_start_prints_what_the_readme_shows(tmp_path_factory: pytest.TempPathFactory) -> None:
    (_, command), (_, shown) = _blocks_after("## Quick start")[:2]
    env, args = _command(command.strip())
    project = _project(tmp_path_factory, env)
    result = project.run(*args)
    assert result.returncode == 0, describe(result)
    *stderr_lines, stdout_line = shown.strip().splitlines()
    assert result.stdout == stdout_line + "\n", describe(result)
    patterns = [
        re.escape(line).replace(r"run_01M86AZC2TTN344AA5W93H9KF0", _RUN_ID) for line in stderr_lines
    ]
    got = result.stderr.splitlines()
    assert len(got) == len(patterns), describe(result)
    for pattern, line in zip(patterns, got, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} is not what the README shows ({pattern})"
    assert (project.root / ".flue" / "flue.db").is_file()  # the default store, as documented


def test_serve_example_answers_what_the_readme_shows(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    (_, block), *_ = _blocks_after("## Serving workflows over HTTP")
    lines = block.replace("\\\n", " ").strip().splitlines()
    serve_line, curl_line, answer_line = lines
    env, args = _command(serve_line)
    project = _project(tmp_path_factory, env)
    serve = Serve(project)
    assert args[args.index("--host") + 1] == "127.0.0.1", args
    readme_port = args[args.index("--port") + 1]
    args[args.index("--port") + 1] = str(serve.port)
    serve.command = args
    try:
        serve.start()
        method, url, headers, body = _curl(curl_line.replace(readme_port, str(serve.port)))
        response = httpx.request(method, url, headers=headers, content=body, timeout=30)
    finally:
        serve.kill()
    expected = answer_line.removeprefix("# ")
    pattern = re.escape(expected).replace(r"run_01\.\.\.", _RUN_ID)
    assert re.fullmatch(pattern, response.text), f"{response.text!r} is not {expected!r}"
    assert json.loads(response.text)["result"] == json.loads(expected)["result"]


def _curl(line: str) -> tuple[str, str, dict[str, str], bytes]:
    """What a ``curl -s -XMETHOD URL -H ... -d ...`` line sends."""
    words = shlex.split(line)
    assert words.pop(0) == "curl", line
    method, url, headers, body = "GET", "", {}, b""
    while words:
        word = words.pop(0)
        if word == "-s":
            continue
        if word.startswith("-X"):
            method = word[2:] or words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = words.pop(0).encode()
            method = method if method != "GET" else "POST"
        else:
            url = word if "://" in word else "http://" + word
    return method, url, headers, body


def test_fake_messages_server_example_works_as_shown(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    (_, block), *_ = (
        b for b in _blocks_after("## The Anthropic provider") if "messages_server" in b[1]
    )
    start, shown, run = block.replace("\\\n", " ").strip().splitlines()
    words = shlex.split(start)
    assert words[:3] == ["python", "-m", "flue_actors.testing.messages_server"], start
    options = [word for word in words[3:] if not word.startswith("[") and not word.endswith("]")]
    assert options == ["--port", "0"], start
    shown_url = shown.split()[-1]
    command, _, answer = run.partition("#")
    with MessagesServer.start(log=tmp_path_factory.mktemp("readme-api") / "log.jsonl") as api:
        assert re.fullmatch(
            re.escape(shown.removeprefix("# ")).replace(
                re.escape(shown_url), r"http://127\.0\.0\.1:\d+"
            ),
            READY_PREFIX + api.url,
        )
        env, args = _command(command.replace(shown_url, api.url))
        project = _project(tmp_path_factory, env)
        result = project.run(*args)
    assert result.returncode == 0, describe(result)
    assert result.stdout == answer.strip() + "\n", describe(result)


def test_ci_runs_the_readmes_test_command() -> None:
    """The test command the quick start gives is the one ``.ci/run`` runs: what CI proves is
    what a newcomer runs."""
    blocks = [text.strip() for _, text in _blocks_after("## Quick start")]
    command = next(text for text in blocks if text.startswith("python -m pytest"))
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in [line.strip() for line in ci_lines], command
