"""``ctx.log``: application log lines recorded as ``log`` events in the run's stream."""

from __future__ import annotations

import traceback
from typing import Any, Literal

from .._jsonvalue import NotJsonError, snapshot
from .sink import EventSink

__all__ = ["RunLog"]


def _attribute(value: Any) -> Any:
    if isinstance(value, BaseException):
        return {
            "name": type(value).__name__,
            "message": str(value),
            "stack": "".join(traceback.format_exception(value)),
        }
    try:
        return snapshot(value)
    except NotJsonError:
        # A log line must never fail the run it describes: keep what can be said of the value.
        return repr(value)


class RunLog:
    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    def _emit(
        self, level: Literal["info", "warn", "error"], message: str, attrs: dict[str, Any]
    ) -> None:
        payload: dict[str, Any] = {"level": level, "message": str(message)}
        if attrs:
            payload["attributes"] = {key: _attribute(value) for key, value in attrs.items()}
        self._sink.emit("log", payload)

    def info(self, message: str, **attributes: Any) -> None:
        self._emit("info", message, attributes)

    def warn(self, message: str, **attributes: Any) -> None:
        self._emit("warn", message, attributes)

    def error(self, message: str, **attributes: Any) -> None:
        self._emit("error", message, attributes)
