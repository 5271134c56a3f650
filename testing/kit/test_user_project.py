"""The kit in a user's own project, laid out as the README shows, run by the ``pytest`` script.

The project has ``workflows/summarize.py`` and ``tests/`` (a conftest and a test module importing
``workflows.summarize``), no configuration file and no extra install: plain ``pytest`` must import
``workflows`` (the script, unlike ``python -m pytest``, does not put the working directory on
``sys.path``) and must run ``async def`` tests that await ``flue.run_async`` with no async plugin
configured. One sync and one async test are meant to fail, so the run shows failures surface.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTEST = Path(sys.executable).parent / "pytest"

CONFTEST = """
import pytest

from workflows.summarize import summarize  # imported while pytest loads conftests


@pytest.fixture
def workflow():
    return summarize
"""

TESTS = """
from workflows.summarize import summarize


def test_summarize(flue, fake_model):
    fake_model.reply("A short summary.")
    run = flue.run(summarize, {"text": "A long document."})
    assert run.status == "completed"
    assert run.result == {"summary": "A short summary."}
    assert fake_model.requests[0].messages[-1]["content"][0]["text"] == "A long document."


async def test_summarize_async(flue, fake_model, workflow):
    fake_model.reply("Awaited.")
    fake_model.reply("By name.")
    run = await flue.run_async(workflow, {"text": "A long document."})
    assert run.result == {"summary": "Awaited."}
    by_name = await flue.run_async("summarize", {"text": "Again."})  # found in workflows/
    assert by_name.result == {"summary": "By name."}


def test_summarize_fails(flue, fake_model):
    fake_model.reply("Not this.")
    assert flue.run(summarize, {"text": "x"}).result == {"summary": "Something else."}


async def test_summarize_async_fails(flue, fake_model):
    fake_model.reply("Not this either.")
    run = await flue.run_async(summarize, {"text": "x"})
    assert run.result == {"summary": "Something else."}
"""

EXPECTED = {
    "test_summarize": "passed",
    "test_summarize_async": "passed",
    "test_summarize_fails": "failed",
    "test_summarize_async_fails": "failed",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    (folder / "workflows").mkdir()
    shutil.copy(ROOT / "workflows" / "summarize.py", folder / "workflows" / "summarize.py")
    (folder / "tests").mkdir()
    (folder / "tests" / "conftest.py").write_text(CONFTEST)
    (folder / "tests" / "test_summarize.py").write_text(TESTS)
    return folder


def outcomes(report: Path) -> dict[str, str]:
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        found[case.attrib["name"]] = "failed" if failed else "skipped" if skipped else "passed"
    return found


@pytest.mark.parametrize(
    "arguments",
    [
        # As a user types it. pytest-asyncio is installed here (a dev dependency) but, with no
        # configuration, in strict mode: it leaves unmarked async tests alone.
        [],
        # As if no async plugin were installed, and with the tests' folder named: then pytest's
        # rootdir is tests/ and the project is the folder pytest was started in.
        ["-p", "no:asyncio", "tests"],
    ],
    ids=["plain", "no-async-plugin"],
)
@pytest.mark.timeout(240)  # past the 180 s its pytest subprocess is given, whose failure says more
def test_plain_pytest_runs_the_projects_tests(project: Path, arguments: list[str]) -> None:
    report = project / f"report-{len(arguments)}.xml"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "PYTHON")) and name != "FLUE_MODEL"
    }
    done = subprocess.run(
        [str(PYTEST), "-p", "no:cacheprovider", f"--junitxml={report}", *arguments],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # 1: tests ran and some failed (not a usage error)
    assert outcomes(report) == EXPECTED, output
    assert "Something else." in output  # the failures are the assertions, not setup errors
    assert "not natively supported" not in output
