"""``RecordingSink``: an event sink that keeps what it is given, for testing harness code
without a runtime or a store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RecordingSink"]


class RecordingSink:
    """Records every emitted event in order (``type`` first, no envelope)::

    harness = Harness(config=..., models=..., sink=RecordingSink(), clock=..., ids=...)
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.announced: list[dict[str, Any]] = []
        """Events for live observers only (``turn_request``), in order."""

    def emit(
        self, type: str, payload: dict[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        event = {"type": type, **payload}
        self.events.append(event)
        return event

    def announce(self, type: str, payload: dict[str, Any]) -> None:
        self.announced.append({"type": type, **payload})

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def of(self, type: str) -> list[dict[str, Any]]:
        """The recorded events of one type."""
        return [event for event in self.events if event["type"] == type]
