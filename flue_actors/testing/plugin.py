"""The pytest plugin, registered by the ``pytest11`` entry point: fixtures ``flue``,
``fake_model``, ``anthropic_api`` and ``messages_server``, and what a project laid out as the
README shows needs to run its tests with plain ``pytest``.

pytest loads this module in every run of an environment where flue_actors is installed, whether
or not the tests use the kit, so it imports nothing heavy at load: each fixture imports its part
of the kit when a test asks for it.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._anthropic_api import AnthropicApi
    from ._fake_model import FakeModel
    from ._kit import FlueTestKit
    from .messages_server import MessagesServer


def project_root(config: pytest.Config) -> Path | None:
    """The folder holding the project's ``workflows/``: pytest's rootdir, else the folder pytest
    was started in (the rootdir is the tests' folder when no configuration file names it)."""
    for candidate in (config.rootpath, config.invocation_params.dir):
        if (candidate / "workflows").is_dir():
            return candidate
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "flue_always_replay",
        type="bool",
        default=False,
        help="flue_actors: check every run the flue fixture makes by replaying it, whole and "
        "interrupted after each operation (also FLUE_ALWAYS_REPLAY=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "flue_always_replay: the flue fixture replay-checks every run of this test",
    )


def always_replay(config: pytest.Config) -> bool:
    """Whether the ``flue`` fixture replay-checks every run (ini or environment)."""
    if os.environ.get("FLUE_ALWAYS_REPLAY", "").strip().lower() in ("1", "true", "yes"):
        return True
    return bool(config.getini("flue_always_replay"))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Make ``import workflows.summarize`` work in tests and conftests under plain ``pytest``
    (``python -m pytest`` has the working directory on ``sys.path``; the ``pytest`` script
    does not), as pytest's ``pythonpath`` setting would, and undo it when pytest ends."""
    root = project_root(early_config)
    if root is None or str(root) in sys.path:
        return
    entry = str(root)
    sys.path.insert(0, entry)

    def remove() -> None:
        if entry in sys.path:
            sys.path.remove(entry)

    early_config.add_cleanup(remove)


@pytest.hookimpl
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test that uses ``flue`` on the kit's own event loop (the one
    ``flue.run`` uses), so ``await flue.run_async(...)`` needs no async plugin.

    An async plugin that takes the test (pytest-asyncio in auto mode or with its marker, anyio
    with its marker) has replaced the coroutine function by then, or answered first; such a
    test is left to it, and so is one whose ``flue`` is a project's own fixture."""
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or "flue" not in pyfuncitem.fixturenames:
        return None
    from ._kit import FlueTestKit

    kit = pyfuncitem.funcargs["flue"]
    if not isinstance(kit, FlueTestKit):  # a project's own fixture of that name
        return None
    wanted = inspect.signature(test).parameters
    arguments = {name: value for name, value in pyfuncitem.funcargs.items() if name in wanted}
    kit.drive(test(**arguments))
    return True


@pytest.fixture
def fake_model() -> FakeModel:
    """The scripted model every agent talks to under the ``flue`` fixture."""
    from ._fake_model import FakeModel

    return FakeModel()


@pytest.fixture
def flue(fake_model: FakeModel, request: pytest.FixtureRequest) -> Iterator[FlueTestKit]:
    """A runtime on a private in-memory log, with the fake model, fixed clock and counted ids.

    Workflows in the project's ``workflows/`` folder are runnable by name; any definition
    passed to ``flue.run`` is registered on first use.
    """
    from ._kit import FlueTestKit

    root = project_root(request.config)
    kit = FlueTestKit(
        fake_model,
        workflows=root / "workflows" if root is not None else None,
        always_replay=always_replay(request.config)
        or request.node.get_closest_marker("flue_always_replay") is not None,
    )
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture
def anthropic_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicApi]:
    """The Anthropic Messages API, emulated over HTTP (respx) at a loopback placeholder URL.

    ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY`` point at it for the test, so the built-in
    ``anthropic`` provider of any registry talks to it; ``anthropic_api.provider`` is one aimed
    at it explicitly. Nothing reaches the network. A call beyond the script fails the test.
    """
    from ._anthropic_api import AnthropicApi

    api = AnthropicApi()
    monkeypatch.setenv("ANTHROPIC_API_KEY", api.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    api.start()
    try:
        yield api
    finally:
        api.stop()
    if api.exhausted is not None:
        raise api.exhausted


@pytest.fixture(scope="session")
def flue_messages_server_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MessagesServer]:
    """The fake Messages API server process, started once per session when first asked for."""
    from .messages_server import MessagesServer

    log = tmp_path_factory.mktemp("messages-server") / "requests.jsonl"
    with MessagesServer.start(log=log) as server:
        yield server


@pytest.fixture
def messages_server(
    flue_messages_server_process: MessagesServer, monkeypatch: pytest.MonkeyPatch
) -> MessagesServer:
    """A fake Anthropic Messages API server in another process on 127.0.0.1, for tests that
    run workflows in subprocesses (``flue-actors run``/``serve``) on the real provider.

    ``ANTHROPIC_BASE_URL`` (its ``url``) and ``ANTHROPIC_API_KEY`` are set for the test, so
    subprocesses inherit them. With nothing scripted it answers ``"SUMMARY: "`` plus the first
    20 characters of the last user message (``[delay=NNN]`` in it: NNN ms late);
    ``reply``/``fail``/``stall`` queue answers first; ``requests()`` lists this test's requests.
    One server serves the session; each test gets an empty script.
    """
    server = flue_messages_server_process.for_test()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    return server
