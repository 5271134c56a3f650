"""How ``flue-actors run`` shows a run's events on a terminal (stderr), line by line."""

from __future__ import annotations

from typing import Any, TextIO

__all__ = ["EventPresenter"]


class EventPresenter:
    """Renders events as Flue's CLI does: a ``run`` row, assistant text indented under an
    ``assistant`` heading, tool rows, log rows, and a closing status line."""

    def __init__(self, out: TextIO, *, color: bool = False) -> None:
        self._out = out
        self._color = color
        self._in_assistant = False

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._color else text

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def _leave_assistant(self) -> None:
        self._in_assistant = False

    def show(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "run_start":
            self._line(f"run {event['runId']}")
        elif kind == "run_resume":
            self._line(f"run {event['runId']} resumed")
        elif kind == "message_end" and event.get("message", {}).get("role") == "assistant":
            text = "".join(
                block.get("text", "")
                for block in event["message"].get("content", [])
                if block.get("type") == "text"
            )
            if text:
                if not self._in_assistant:
                    self._line("assistant")
                    self._in_assistant = True
                for line in text.splitlines() or [""]:
                    self._line("  " + line)
        elif kind == "thinking_end":
            self._leave_assistant()
            self._line(self._dim("thinking"))
        elif kind == "tool_start":
            self._leave_assistant()
            self._line(f"tool {event.get('toolName')}")
        elif kind == "tool":
            status = "tool error" if event.get("isError") else "tool done"
            self._line(f"{status} {event.get('toolName')}")
        elif kind == "log":
            self._leave_assistant()
            self._line(f"{event.get('level')} {event.get('message')}")
        elif kind == "compaction":
            self._line(self._dim("compaction"))
        elif kind == "run_end":
            self._leave_assistant()
            if event.get("isError"):
                error = event.get("error") or {}
                self._line(f"Workflow failed: {error.get('message', 'unknown error')}")
                if error.get("type"):
                    self._line(self._dim(f"  type: {error['type']}"))
            else:
                self._line("workflow completed")
