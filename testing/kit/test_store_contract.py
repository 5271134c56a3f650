"""A third-party store proves itself with the kit's contract, as the README shows: its example
test module, in a project of its own with no configuration, run by plain ``pytest``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTEST = Path(sys.executable).parent / "pytest"
# One part of each contract class (streams, records, owners), so the run stays short; the whole
# contract runs against this project's stores in testing/store/test_contract.py.
SELECTION = "append_with or list_runs_filters or cursor_paging or orphans or batch_admits_each"


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Testing an event store") :]
    match = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.timeout(240)  # past the 180 s its pytest subprocess is given
def test_the_readme_store_example_runs_the_contract_in_a_project_of_its_own(
    tmp_path: Path,
) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_my_store.py").write_text(_readme_example(), encoding="utf-8")
    report = tmp_path / "report.xml"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "PYTHON"))
    }
    done = subprocess.run(
        [str(PYTEST), "-p", "no:cacheprovider", f"--junitxml={report}", "-k", SELECTION],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    cases = list(ElementTree.parse(report).iter("testcase"))
    names = {case.attrib["name"].split("[")[0] for case in cases}
    assert all(case.attrib["classname"].endswith("TestMyStore") for case in cases)
    assert all(not list(case) for case in cases), "every selected contract test passes"
    assert {
        "test_append_with_close_appends_and_closes",
        "test_list_runs_filters_are_and_combined",
        "test_cursor_paging_visits_every_run_once",
        "test_runs_of_a_live_owner_are_not_orphans",
        "test_a_batch_admits_each_run_once_and_keeps_existing_ones",
    } <= names


def test_a_store_class_sets_how_many_examples_each_property_runs() -> None:
    """``property_examples`` reaches the hypothesis tests a store class inherits (each opens a
    fresh store per example), and other store classes keep their own count."""
    import asyncio
    from typing import Any

    from flue_actors.store import SqliteEventStore
    from flue_actors.testing.store_contract import EventStoreContract

    opened: list[Path] = []

    class Few(EventStoreContract):
        reopens = False
        property_examples = 3

        def open_store(self, location: Path) -> SqliteEventStore:
            opened.append(location)
            return SqliteEventStore(":memory:")

    test: Any = Few.test_paging_from_any_offset_yields_exactly_the_events_after_it
    assert (
        test
        is not EventStoreContract.test_paging_from_any_offset_yields_exactly_the_events_after_it
    )
    body = test.hypothesis.inner_test
    # What pytest-asyncio does for an async hypothesis test: each example runs in an event loop.
    test.hypothesis.inner_test = lambda *args, **kwargs: asyncio.run(body(*args, **kwargs))
    test(Few())
    assert len(opened) == 3
