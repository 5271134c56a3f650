"""What a RunActor needs besides its run: the same bundle in process, in a Ray host, or a test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._clock import Clock
from .._ids import IdSource
from ..models import ModelRegistry
from ..store import EventStore
from .discovery import WorkflowRegistry

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["RunServices"]


@dataclass(frozen=True)
class RunServices:
    store: EventStore
    workflows: WorkflowRegistry
    models: ModelRegistry
    clock: Clock
    ids: IdSource
    env: Mapping[str, str]
    # The runtime that admits runs invoked from inside a run (``ctx.invoke``, ambient
    # ``invoke``); None in a Ray host, which has none.
    runtime: Runtime | None = None
