"""Where the harness sends events: the run's stream writer, or anything shaped like it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["EventSink"]


class EventSink(Protocol):
    def emit(
        self, type: str, payload: dict[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Stamp the v3 envelope on ``payload`` (``type`` first) and record it in order.
        ``detail`` joins the event only for live observers (``observe()``), never the log."""
        ...

    def announce(self, type: str, payload: dict[str, Any]) -> None:
        """An event for live observers only (``turn_request``): never recorded."""
        ...
