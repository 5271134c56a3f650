"""The RunActor: the one owner of one run.

It owns the run's harness (sessions, conversation, sandbox), executes the workflow's action, and
is the only writer of the run's stream. It knows nothing of where it is hosted: the local backend
runs it as a task in the caller's event loop, a Ray host runs the same class in its own loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..clock import parse_timestamp
from ..definitions import ActionContext, AgentContext
from ..errors import RunCancelledError
from ..events import RunAdmittedEvent, error_payload
from ..harness import Harness, RunLog
from ..jsonvalue import UNSET, JsonValue
from ..observation import (
    EventContext,
    ExecutionContext,
    WorkflowExecution,
    dispatch,
    intercept,
)
from . import ambient
from .run_stream import RunStream
from .services import RunServices

__all__ = ["RunActor"]


class RunActor:
    def __init__(self, header: RunAdmittedEvent, services: RunServices) -> None:
        self.run_id = header["runId"]
        self.workflow_name = header["workflowName"]
        self._header = header
        self._services = services
        self._started_ms = parse_timestamp(header["startedAt"])
        self._stream = RunStream(services.store, self.run_id, services.clock)
        # Ended from elsewhere (cancelled before this host took it, recovered while it was
        # presumed dead): nothing it does can be recorded any more, so it stops now rather than
        # running the workflow to its end for nobody.
        self._stream.on_fenced = lambda: self.cancel("The run was ended by another writer.")
        self._observed = EventContext(self.run_id, self.workflow_name, services.env)
        self._stream.observed_as = self._observed
        self._body: asyncio.Task[JsonValue] | None = None
        self._cancel_reason: str | None = None
        self._harness: Harness | None = None

    def cancel(self, reason: str = "The run was cancelled.") -> None:
        """Abort the run: in-flight operations see the abort, the run ends ``run_cancelled``."""
        if self._cancel_reason is not None:
            return
        self._cancel_reason = reason
        if self._harness is not None:
            # Aborted first, so each in-flight operation records the run's reason as its own.
            self._harness.abort(reason)
        if self._body is not None:
            self._body.cancel(reason)

    async def run(self) -> dict[str, Any]:
        """Execute the run to its end and return its ``run_end`` event."""
        header = self._header
        start: dict[str, Any] = {
            "runId": self.run_id,
            "workflowName": self.workflow_name,
            "startedAt": header["startedAt"],
        }
        if "input" in header:
            start["input"] = header["input"]
        # The body is scheduled before run_start is emitted (it cannot run before this method
        # next awaits, so run_start still comes first): the stream's flusher, started by that
        # emit, then runs after the body's first step and writes run_start together with what
        # the run does next, in one append rather than one of its own.
        execution = WorkflowExecution(
            self.run_id, self.workflow_name, "start", started_at=header["startedAt"]
        )
        context = ExecutionContext(
            self.run_id, self.workflow_name, trace_carrier=header.get("traceCarrier")
        )
        self._body = asyncio.get_running_loop().create_task(
            intercept(execution, context, self._execute)
        )
        self._stream.emit("run_start", start)
        if self._cancel_reason is not None:
            self._body.cancel(self._cancel_reason)
        error: BaseException | None = None
        result: JsonValue = None
        try:
            result = await self._body
        except asyncio.CancelledError:
            if self._cancel_reason is None:
                raise
        except Exception as failure:
            error = failure
        if self._cancel_reason is not None:
            # Requested cancellation decides the outcome, whatever the workflow made of the
            # AbortError its operations saw.
            error = RunCancelledError(run_id=self.run_id, reason=self._cancel_reason)
        # Everything before run_end is written first, so its timestamp (the record's endedAt)
        # and its durationMs come from the same instant: endedAt - startedAt == durationMs.
        # Only then is the stream's failure known: the last events may be the ones it refused.
        await self._stream.flush()
        if self._stream.failure is not None and error is None:
            error = self._stream.failure  # the run's own events were not all recorded
        end: dict[str, Any] = {"runId": self.run_id, "result": None if error else result}
        end["isError"] = error is not None
        if error is not None:
            end["error"] = error_payload(error)
        ended_ms = self._services.clock.now_ms()
        end["durationMs"] = ended_ms - self._started_ms
        try:
            ended = await self._stream.end("run_end", end, at_ms=ended_ms)
            dispatch(ended, self._observed)
            return ended
        finally:
            # The stream's callback refers back to this actor: with the stream ended it can no
            # longer be fenced, and without the cycle the run is freed as soon as it ends.
            self._stream.on_fenced = None

    async def _execute(self) -> JsonValue:
        services = self._services
        workflow = services.workflows.get(self.workflow_name).definition
        action = workflow.action
        parsed = action.parse_input(self._header.get("input", UNSET), workflow=self.workflow_name)
        config = await workflow.agent.configure(AgentContext(id=self.run_id, env=services.env))
        harness = Harness(
            config=config,
            models=services.models,
            sink=self._stream,
            clock=services.clock,
            ids=services.ids,
            run_id=self.run_id,
        )
        self._harness = harness
        log = RunLog(self._stream)
        context = ActionContext(harness=harness, log=log, input=parsed)
        try:
            if services.runtime is None:
                value = await action.run(context)
            else:
                with ambient.running(services.runtime, log):
                    value = await action.run(context)
        finally:
            await harness.close(self._cancel_reason or "The run ended.")
        return action.serialize_output(value)
