"""Fixtures of the Ray backend's tests. The session's two-node loopback cluster
(``ray_cluster``) and the variables that keep Ray on loopback come from testing/conftest.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flue_actors import RayCluster, Runtime

os.environ["FLUE_MODEL"] = "fake/echo"
# In the environment the cluster's nodes start with, as `NAME=value ray start` would put it:
# hosts must read what they need from there, never from the driver.
NODE_ENV_PROBE = "set-when-the-node-started"
os.environ["NODE_ENV_PROBE"] = NODE_ENV_PROBE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).parent / "workflows"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder of its own: the Ray tests' workflows plus summarize, and a store."""
    shutil.copytree(WORKFLOWS, tmp_path / "workflows")
    shutil.copy(ROOT / "workflows" / "summarize.py", tmp_path / "workflows" / "summarize.py")
    return tmp_path


@pytest.fixture
async def ray_runtime(ray_cluster: Any, project: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(
        project / "workflows", store=f"sqlite:///{project / 'flue.db'}", backend=RayCluster()
    )
    try:
        await runtime.serve()  # a long-lived runtime: its lease supervisor sweeps meanwhile
        yield runtime
    finally:
        await runtime.close()
        runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]
