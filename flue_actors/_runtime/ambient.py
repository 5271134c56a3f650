"""Ambient invocation: ``invoke(workflow, input)`` from workflow code or from application code
running in the server, without a handle on the runtime (Flue's ambient ``invoke()``, 1.6).

Inside a run, the runtime that runs it admits the new run, and the invoking run records it in
its own log (a ``log`` event, below). Outside a run, the most recently created runtime of this
process that is not closed admits it (the one ``flue-actors serve`` or the application made).
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .._jsonvalue import UNSET
from ..errors import WorkflowInvocationNotConfiguredError

if TYPE_CHECKING:
    from .._definitions import WorkflowDefinition
    from .._harness import RunLog
    from .._records import RunRecord
    from .runtime import RunReceipt, Runtime

__all__ = ["INVOKED_MESSAGE", "invoke", "invoke_and_wait"]

INVOKED_MESSAGE = "[flue:invoke] Invoked workflow"
"""The message of the ``log`` event a run records when it invokes another workflow."""

# The runtime running the current run, and the run's log (set for the run's own task).
_running: ContextVar[tuple[Runtime, RunLog] | None] = ContextVar("flue_running", default=None)
# Open runtimes, oldest first; weakly held, so one dropped without close() is not kept alive.
_serving: list[weakref.ref[Runtime]] = []


def serving(runtime: Runtime) -> None:
    """``runtime`` is open in this process: ambient calls outside runs may use it."""
    _serving.append(weakref.ref(runtime))


def closed(runtime: Runtime) -> None:
    _serving[:] = [ref for ref in _serving if ref() is not None and ref() is not runtime]


def running(runtime: Runtime, log: RunLog) -> None:
    """Called first thing in a run's body, which has a task of its own: from then on, for that
    task and everything it starts, ambient calls go to ``runtime`` and are recorded in ``log``.
    Nothing needs undoing: the task's context ends with it."""
    _running.set((runtime, log))


def _runtime() -> tuple[Runtime, RunLog | None]:
    current = _running.get()
    if current is not None:
        return current
    for ref in reversed(_serving):
        runtime = ref()
        if runtime is not None:
            return runtime, None
    raise WorkflowInvocationNotConfiguredError()


async def invoke(workflow: WorkflowDefinition | str, input: Any = UNSET) -> RunReceipt:
    """Admit a run of ``workflow`` (a discovered definition, or its name) and return its
    receipt once admission is durable, as ``Runtime.invoke`` does. Called during a run, the
    invoking run's log records ``log {level: "info", message: "[flue:invoke] Invoked workflow",
    attributes: {runId, workflowName}}`` (the new run's). ``WorkflowInvocationNotConfiguredError``
    when no runtime is running here."""
    runtime, log = _runtime()
    receipt = await runtime.invoke(workflow, input)
    if log is not None:
        log.info(INVOKED_MESSAGE, runId=receipt.run_id, workflowName=receipt.workflow_name)
    return receipt


async def invoke_and_wait(
    workflow: WorkflowDefinition | str, input: Any = UNSET, *, timeout: float | None = None
) -> RunRecord:
    """:func:`invoke`, then the new run's terminal record."""
    receipt = await invoke(workflow, input)
    runtime, _ = _runtime()
    return await runtime.wait(receipt.run_id, timeout=timeout)
