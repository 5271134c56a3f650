"""What a store's test class provides to the contract, and the fixtures built on it."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

import pytest
import pytest_asyncio
from hypothesis import HealthCheck

from ...store import EventStore

__all__ = ["ACROSS_STORES", "StoreContractBase", "StoreOpener"]

StoreOpener = Callable[[], EventStore]

# A property test of the contract runs once per store class that inherits it, each with its own
# ``self``: that is the design, not the mistake hypothesis's health check looks for.
ACROSS_STORES = [HealthCheck.differing_executors]


class StoreContractBase:
    """Implement :meth:`open_store` (and :meth:`discard` if a store keeps data outside
    ``location``); set :attr:`reopens` to ``False`` for a store whose data dies with it."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    #: A second store opened on the same ``location`` sees what the first one wrote.
    reopens: ClassVar[bool] = True

    def open_store(self, location: Path) -> EventStore:
        """A new store keeping its data at ``location`` (an empty folder, unique to the test)."""
        raise NotImplementedError(f"{type(self).__name__} must implement open_store(location)")

    async def discard(self, location: Path) -> None:
        """Delete what the stores opened on ``location`` kept elsewhere (a database schema);
        called once they are all closed."""

    @pytest_asyncio.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[EventStore]:
        async with self.fresh_store(tmp_path) as opened:
            yield opened

    @pytest_asyncio.fixture
    async def store_opener(self, tmp_path: Path) -> AsyncIterator[StoreOpener]:
        """Opens any number of stores on the same data; closes them all at teardown."""
        if not self.reopens:
            pytest.skip(f"{type(self).__name__}: a store's data does not outlive it")
        opened: list[EventStore] = []

        def open_again() -> EventStore:
            new = self.open_store(tmp_path)
            opened.append(new)
            return new

        try:
            yield open_again
        finally:
            for each in opened:
                await each.close()  # closing twice is a no-op, so tests may close early
            await self.discard(tmp_path)

    @asynccontextmanager
    async def fresh_store(self, location: Path | None = None) -> AsyncIterator[EventStore]:
        """A new, empty store, closed and discarded afterwards. Property tests take one per
        example (a function-scoped fixture would be shared between examples)."""
        if location is None:
            with tempfile.TemporaryDirectory(prefix="flue-contract-") as folder:
                async with self.fresh_store(Path(folder)) as opened:
                    yield opened
            return
        opened = self.open_store(location)
        try:
            yield opened
        finally:
            await opened.close()
            await self.discard(location)
