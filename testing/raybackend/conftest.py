"""One two-node Ray cluster for the whole test session, kept on loopback.

Ray reads some of these variables when it is imported, so they are set here, before anything in
this folder imports it (test modules import ray inside their tests). See
flue_actors/runtime/ray/environment.py for why each is needed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flue_actors import Runtime
from flue_actors.runtime.ray.environment import NAMESPACE, loopback_environment

os.environ.update(loopback_environment())
os.environ["RAY_AUTH_MODE"] = "disabled"  # a private test instance
os.environ["FLUE_MODEL"] = "fake/echo"
# In the environment the cluster's nodes start with, as `NAME=value ray start` would put it:
# hosts must read what they need from there, never from the driver.
NODE_ENV_PROBE = "set-when-the-node-started"
os.environ["NODE_ENV_PROBE"] = NODE_ENV_PROBE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).parent / "workflows"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False, "node_ip_address": "127.0.0.1"},
    )
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        namespace=NAMESPACE,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder of its own: the Ray tests' workflows plus summarize, and a store."""
    shutil.copytree(WORKFLOWS, tmp_path / "workflows")
    shutil.copy(ROOT / "workflows" / "summarize.py", tmp_path / "workflows" / "summarize.py")
    return tmp_path


@pytest.fixture
async def ray_runtime(ray_cluster: Any, project: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(
        project / "workflows", store=f"sqlite:///{project / 'flue.db'}", backend="ray"
    )
    try:
        yield runtime
    finally:
        await runtime.close()
        runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]
