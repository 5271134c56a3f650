"""The pytest plugin, registered by the ``pytest11`` entry point: fixtures ``flue``,
``fake_model`` and ``anthropic_api``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .anthropic_api import AnthropicApi
from .fake_model import FakeModel
from .kit import FlueTestKit


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
