"""The event-store contract: the tests a store must pass to back a flue_actors runtime.

A store (a third-party backend, or this project's SQLite and PostgreSQL stores) proves itself by
subclassing :class:`EventStoreContract` in a test module, in a class pytest collects (named
``Test...``), and implementing :meth:`~StoreContractBase.open_store`::

    from pathlib import Path

    from flue_actors.testing.store_contract import EventStoreContract

    class TestMyStore(EventStoreContract):
        def open_store(self, location: Path) -> MyStore:
            return MyStore(location / "events.db")

        async def discard(self, location: Path) -> None:
            ...  # drop what the stores kept outside `location` (a database schema), if anything

Every test method then runs against that store: streams (offsets, reads, appends, closing,
waiting, concurrent writers), run records (admission, projection, listing, cursors, rebuild),
owners (heartbeats, orphans, pruning, batch admission) and hypothesis properties (the record is
the fold of the log; a stream pages exactly from any offset). A store whose data does not outlive
it sets ``reopens = False``, which skips the tests that reopen a store on the same data; one whose
fresh store is slow to make may lower ``property_examples`` (examples per property test, each on
a fresh store; 150 by default).

The tests need ``pytest-asyncio`` and ``hypothesis``. The factories (:func:`admission`,
:func:`run_start`, :func:`run_end`, ...) build the events a run's stream really carries, for a
store's own further tests.
"""

from __future__ import annotations

from ... import _lazy
from ._base import StoreContractBase, StoreOpener
from ._factories import (
    admission,
    append_events,
    gather_settled,
    iso,
    log_event,
    make_run_id,
    read_all,
    run_end,
    run_resume,
    run_start,
)
from ._ownership import OwnershipContract
from ._properties import PropertyContract
from ._runs import RunRecordContract, varied_runs
from ._streams import StreamContract

__all__ = [
    "EventStoreContract",
    "OwnershipContract",
    "PropertyContract",
    "RunRecordContract",
    "StoreContractBase",
    "StoreOpener",
    "StreamContract",
    "admission",
    "append_events",
    "gather_settled",
    "iso",
    "log_event",
    "make_run_id",
    "read_all",
    "run_end",
    "run_resume",
    "run_start",
    "varied_runs",
]

_lazy.publish(__name__)


class EventStoreContract(StreamContract, RunRecordContract, OwnershipContract, PropertyContract):
    """Every part of the contract. Subclass it (as ``Test...``) and implement ``open_store``."""
