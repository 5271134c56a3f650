"""The pytest plugin, registered by the ``pytest11`` entry point: fixtures ``flue``,
``fake_model``, ``anthropic_api`` and ``messages_server``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .anthropic_api import AnthropicApi
from .fake_model import FakeModel
from .kit import FlueTestKit

if TYPE_CHECKING:  # started lazily: most sessions never use it
    from .messages_server import MessagesServer


@pytest.fixture
def fake_model() -> FakeModel:
    """The scripted model every agent talks to under the ``flue`` fixture."""
    return FakeModel()


@pytest.fixture
def flue(fake_model: FakeModel, request: pytest.FixtureRequest) -> Iterator[FlueTestKit]:
    """A runtime on a private in-memory log, with the fake model, fixed clock and counted ids.

    Workflows in the project's ``workflows/`` folder are runnable by name; any definition
    passed to ``flue.run`` is registered on first use.
    """
    directory = request.config.rootpath / "workflows"
    kit = FlueTestKit(fake_model, workflows=directory if directory.is_dir() else None)
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
