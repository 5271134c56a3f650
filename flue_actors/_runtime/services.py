"""What a RunActor needs besides its run: the same bundle in process, in a Ray host, or a test."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._clock import Clock
from .._events import RunAdmittedEvent
from .._ids import IdSource
from ..models import ModelBatches, ModelRegistry, TurnBatcher
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
    # The collector of the turns of runs admitted with model batches of their own (a batch's:
    # ``runtime.batch(..., model_batches=)``), per settings; None: one of this process.
    batchers: Callable[[ModelBatches], TurnBatcher] | None = None
    _batched: dict[ModelBatches, ModelRegistry] = field(default_factory=dict, compare=False)

    def models_for(self, header: RunAdmittedEvent) -> ModelRegistry:
        """The registry a run's turns go through: ``models``, or with the model batches its
        header names, the one registry of those settings (so the turns of all such runs share
        a collector, in every life of the run)."""
        wire = header.get("modelBatches")
        if not isinstance(wire, dict):
            return self.models
        return self.batched_models(ModelBatches.from_wire(wire))

    def batched_models(self, settings: ModelBatches) -> ModelRegistry:
        """``models`` with ``settings``' model batches: the runtime's own registry when it was
        made with these settings, else one derived from it the first time they are asked for
        (the settings first asked with, their ``sleep`` included, are those kept)."""
        if self.models.model_batches == settings:
            return self.models
        found = self._batched.get(settings)
        if found is None:
            batcher = None if self.batchers is None else self.batchers(settings)
            found = self.models.with_model_batches(settings, batcher=batcher)
            self._batched[settings] = found
        return found

    def batched_registries(self) -> list[ModelRegistry]:
        """The registries derived so far for model batches of runs' own."""
        return list(self._batched.values())

    async def aclose_batched(self) -> None:
        """Close the registries derived for model batches (their collectors)."""
        registries = list(self._batched.values())
        self._batched.clear()
        for registry in registries:
            batcher = registry.batcher
            if batcher is not None:
                await batcher.aclose()
