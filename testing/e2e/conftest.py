"""Fixtures of the end-to-end tests: deployments that the README describes, each started
through its real command (``flue-actors serve ...``) in a temporary project folder, on the
real Anthropic provider aimed at the session's fake Messages API server (another process)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flue_actors.testing.messages_server import MessagesServer

from .support import Project, Serve, drop_schema, postgres_url


@dataclass
class Deployment:
    """A served project, and what the tests of one class learnt about it on the way."""

    project: Project
    serve: Serve
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def _store(kind: str, root: Path) -> tuple[str, str | None]:
    """The store's URL, and the PostgreSQL schema to drop afterwards (if any)."""
    if kind == "sqlite":
        return f"sqlite:///{root / '.flue' / 'flue.db'}", None
    schema = "e2e_" + secrets.token_hex(6)
    return postgres_url(schema), schema


def _named_hosts() -> set[str]:
    import ray

    from flue_actors._runtime.ray.environment import NAMESPACE

    return {
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == NAMESPACE and actor["name"].startswith("flue-")
    }


def _kill_hosts(names: set[str]) -> None:
    import ray

    from flue_actors._runtime.ray.environment import NAMESPACE

    for name in names:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


@pytest.fixture(scope="class")
def deployment(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    flue_messages_server_process: MessagesServer,
) -> Iterator[Deployment]:
    """``flue-actors serve`` as the test class describes it: ``store`` (``"sqlite"`` or
    ``"postgres"``) and ``backend`` (``"local"``, ``"ray"`` for a private Ray instance the
    server starts, or ``"cluster"`` for ``--address`` of the session's Ray cluster)."""
    store, backend = request.cls.store, request.cls.backend
    root = tmp_path_factory.mktemp(f"{store}-{backend}")
    database_url, schema = _store(store, root)
    project = Project.create(root, database_url, flue_messages_server_process)
    args: list[str] = []
    hosts_before: set[str] | None = None
    if backend == "ray":
        args = ["--backend", "ray"]
    elif backend == "cluster":
        cluster = request.getfixturevalue("ray_cluster")
        args = ["--address", cluster.address]
        hosts_before = _named_hosts()
    serve = Serve(project, args)
    try:
        serve.start()
        yield Deployment(project, serve)
    finally:
        serve.kill()
        if hosts_before is not None:
            _kill_hosts(_named_hosts() - hosts_before)
        if schema is not None:
            drop_schema(schema)
