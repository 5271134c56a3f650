"""Every Python snippet in the README, read from the README itself, so none can drift from the
code: each parses, each name it imports from flue_actors exists, and the snippets a reader can
run as they stand (the test module, the Python API tour, the client) run in a project of their
own, the way the README presents them.

The fragments that assume the reader's own objects (an agent, a tool, a token) are held to the
first two checks only.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Final

import pytest

from .support import REPO, Project, Serve, describe

README: Final = (REPO / "README.md").read_text(encoding="utf-8")
_FENCE: Final = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SNIPPETS: Final = [match.group(1) for match in _FENCE.finditer(README)]


def _snippet(first_line: str) -> str:
    """The one snippet that starts with (or contains, as a line) ``first_line``."""
    found = [text for text in SNIPPETS if first_line in text.splitlines()]
    assert len(found) == 1, f"{len(found)} README snippets hold the line {first_line!r}"
    return found[0]


def _parse(text: str) -> ast.Module:
    # The README writes the async API as a reader types it in `python -m asyncio`: top-level
    # `async with` and `await` are allowed there.
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(text, "<README>", "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_every_snippet_parses_and_imports_only_what_exists(index: int) -> None:
    tree = _parse(SNIPPETS[index])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flue_actors"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flue_actors"):
                    importlib.import_module(alias.name)


def _project(tmp_path: Path) -> Project:
    """A project laid out as the README's: workflows/summarize.py is the README's own."""
    project = Project.create(tmp_path, None, None)
    summarize = _snippet(
        "async def summarize(ctx: ActionContext[SummarizeInput]) -> SummarizeOutput:"
    )
    (project.root / "workflows" / "summarize.py").write_text(summarize, encoding="utf-8")
    project.env["FLUE_MODEL"] = "fake/echo"
    return project


def _python(project: Project, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_testing_snippets_pass_in_a_users_project(tmp_path: Path) -> None:
    project = _project(tmp_path)
    sync_test = _snippet("def test_summarize(flue, fake_model):")
    async_test = _snippet("async def test_summarize_async(flue, fake_model):")
    tests = project.root / "tests"
    tests.mkdir()
    (tests / "test_summarize.py").write_text(sync_test + "\n\n" + async_test, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, describe(result)
    assert "2 passed" in result.stdout, describe(result)


def test_the_python_api_tour_runs_as_written(tmp_path: Path) -> None:
    project = _project(tmp_path)
    tour = _snippet("from flue_actors import Runtime")
    program = "import asyncio\n\nasync def main():\n" + textwrap.indent(tour, "    ")
    program += "\n\nasyncio.run(main())\n"
    result = _python(project, program)
    assert result.returncode == 0, describe(result)
    printed = [line.split(" ", 3) for line in result.stdout.splitlines()]
    assert sorted(int(index) for index, *_ in printed) == list(range(100)), describe(result)
    assert {status for _, _, status, _ in printed} == {"completed"}, describe(result)


def test_the_client_snippet_runs_against_a_server(tmp_path: Path) -> None:
    project = _project(tmp_path)
    client = next(text for text in SNIPPETS if "FlueClient(" in text)
    assert "http://127.0.0.1:8000" in client
    serve = Serve(project)
    try:
        serve.start()
        result = _python(project, client.replace("127.0.0.1:8000", f"127.0.0.1:{serve.port}"))
    finally:
        serve.kill()
    assert result.returncode == 0, describe(result)
    types = result.stdout.split()
    assert types[0] == "run_start", describe(result)
    assert types[-1] == "run_end", describe(result)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contents_table_links_to_sections_that_exist() -> None:
    headings = {_anchor(line[3:]) for line in README.splitlines() if line.startswith("## ")}
    contents = README[: README.index("## Quick start")]
    links = re.findall(r"\]\(#([\w-]+)\)", contents)
    assert len(links) >= 10
    assert [link for link in links if link not in headings] == []
