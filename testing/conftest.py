"""Fixtures shared by every folder of this project's tests: one two-node Ray cluster for the
whole session, kept on loopback, whose nodes reach the session's fake Messages API server.

Ray reads some of these variables when it is imported, so they are set here, before any test
module imports it (test modules import ray inside their tests and fixtures). See
flue_actors/_runtime/ray/environment.py for why each is needed. Subprocesses the tests start
inherit them, so a ``flue-actors serve --address`` aimed at this cluster stays on loopback too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from flue_actors._runtime.ray.environment import NAMESPACE, loopback_environment
from flue_actors.testing.messages_server import MessagesServer

os.environ.update(loopback_environment())
os.environ["RAY_AUTH_MODE"] = "disabled"  # a private test instance


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with Ray tests (marked ``ray``, or using the session's cluster) run last, each
    in its collected order: the cluster's processes take about a fifth of a core while idle,
    which the rest of the suite would otherwise pay for from the first such test on."""
    on_ray = {
        item.path
        for item in items
        if item.get_closest_marker("ray") or "ray_cluster" in getattr(item, "fixturenames", ())
    }
    items.sort(key=lambda item: item.path in on_ray)  # stable: each module keeps its order


@pytest.fixture(scope="session")
def ray_cluster(flue_messages_server_process: MessagesServer) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` (head and one worker node, 2 CPUs each, on 127.0.0.1),
    with this process attached as a driver in flue_actors' namespace; ``.address`` is its GCS
    address, for other processes to attach to.

    Its nodes are started with ``ANTHROPIC_BASE_URL`` (the session's fake Messages API server)
    and ``ANTHROPIC_API_KEY`` in their environment, as ``ray start`` run from a configured shell
    would have them: Ray workers read the provider's settings from their node.
    """
    import ray
    from ray.cluster_utils import Cluster

    node_environment = {
        "ANTHROPIC_BASE_URL": flue_messages_server_process.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake",
    }
    saved = {name: os.environ.get(name) for name in node_environment}
    os.environ.update(node_environment)
    try:
        cluster: Any = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "include_dashboard": False,
                "node_ip_address": "127.0.0.1",
            },
        )
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
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
