"""Importing flue_actors, and loading its pytest plugin, leaves the heavy dependencies unloaded.

Every pytest run in an environment with flue_actors installed loads the plugin, and every
process that defines or runs workflows imports the package; both used to load asyncpg, httpx,
just-bash (and aiohttp) and, for the plugin, respx. Checked by inspection in a fresh interpreter
(timing is measured by benchmarks/bench_import.py, not here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Past the 120 s its interpreter subprocess is given, whose failure names the statement.
pytestmark = pytest.mark.timeout(180)

# Top-level packages that only the code using them may import.
HEAVY = frozenset(
    {
        "aiohttp",
        "anthropic",
        "asyncpg",
        "fastapi",
        "httpx",
        "httpx2",
        "hypothesis",
        "just_bash",
        "mcp",
        "mcp_types",
        "ray",
        "respx",
        "starlette",
        "uvicorn",
        "yaml",
    }
)

_REPORT = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def loaded_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running ``statement``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}\n{_REPORT}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    "statement",
    [
        "import flue_actors",
        # What pytest does in every run: the pytest11 entry point loads this module.
        "import pytest, flue_actors.testing.plugin",
        # What a workflow file does (and with it a Ray host, a test module).
        "import workflows.summarize",
        # The CLI: `flue-actors runs list` on SQLite needs none of them.
        "import flue_actors._cli",
    ],
)
def test_nothing_heavy_is_loaded(statement: str) -> None:
    loaded = loaded_after(statement)
    assert "flue_actors" in loaded  # the statement did import the package
    assert loaded & HEAVY == set(), f"{statement!r} loaded {sorted(loaded & HEAVY)}"


def test_a_lazy_name_loads_its_dependency_on_first_use() -> None:
    # The probe above would pass if HEAVY named nothing that loads: here the same interpreter
    # check sees asyncpg arrive once the PostgreSQL store is asked for.
    loaded = loaded_after("import flue_actors.store as s; s.PostgresEventStore")
    assert "asyncpg" in loaded
