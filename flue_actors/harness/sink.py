"""Where the harness sends events: the run's stream writer, or anything shaped like it."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["EventSink"]


class EventSink(Protocol):
    def emit(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Stamp the v3 envelope on ``payload`` (``type`` first) and record it in order."""
        ...
