"""Which workflow each run belongs to, as far as this process has seen.

A run's workflow never changes once it is admitted, and an admitted run is never removed, so a
read of a run this process admitted or has already looked up needs no store read to find whose
``runs`` dependency applies. Reads that need the record itself (``?meta``, cancel) still read it.
"""

from __future__ import annotations

__all__ = ["KnownRuns"]


class KnownRuns:
    """The workflow name of up to ``capacity`` runs, the oldest forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._workflows: dict[str, str] = {}

    def workflow_of(self, run_id: str) -> str | None:
        return self._workflows.get(run_id)

    def remember(self, run_id: str, workflow_name: str) -> None:
        workflows = self._workflows
        if run_id not in workflows and len(workflows) >= self._capacity:
            del workflows[next(iter(workflows))]
        workflows[run_id] = workflow_name
