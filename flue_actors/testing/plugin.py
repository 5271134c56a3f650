"""The pytest plugin, registered by the ``pytest11`` entry point: fixtures ``flue`` and
``fake_model``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
