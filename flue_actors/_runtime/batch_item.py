"""What a batch yields per input: its run's outcome, or why it has no run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._events import RunError, error_payload
from .._jsonvalue import UNSET, JsonValue, Unset
from .._records import RunRecord
from ..errors import FlueError

__all__ = ["BatchItem"]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input's outcome. ``index`` is its 0-based position among the inputs; ``record`` its
    run's terminal record, or ``None`` when it has no run (``refusal`` says why: input that
    fails the schema, a conflicting key, a failed admission). ``resumed``: the key found a
    run an earlier batch admitted."""

    index: int
    key: str | None
    record: RunRecord | None = None
    refusal: FlueError | None = None
    resumed: bool = False

    @property
    def run_id(self) -> str | None:
        return None if self.record is None else self.record.run_id

    @property
    def status(self) -> str:
        """The run's status (``completed`` or ``errored``); ``errored`` for an item without one."""
        return "errored" if self.record is None else self.record.status

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def result(self) -> JsonValue | Unset:
        return UNSET if self.record is None else self.record.result

    @property
    def error(self) -> RunError | None:
        if self.refusal is not None:
            return error_payload(self.refusal)
        return None if self.record is None else self.record.error

    def to_wire(self) -> dict[str, Any]:
        """The item as a JSON object (``flue-actors batch`` writes one per output line)."""
        wire: dict[str, Any] = {"key": self.key}
        if self.record is not None:
            wire["runId"] = self.record.run_id
        wire["status"] = self.status
        if self.record is not None and self.record.result is not UNSET:
            wire["result"] = self.record.result
        error = self.error
        if error is not None and not self.ok:
            wire["error"] = error
        return wire
