"""The RunActor: the one owner of one run.

It owns the run's harness (sessions, conversation, sandbox), executes the workflow's action, and
is the only writer of the run's stream. It knows nothing of where it is hosted: the local backend
runs it as a task in the caller's event loop, a Ray host runs the same class in its own loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._clock import parse_timestamp
from .._definitions import ActionContext, AgentContext
from .._events import RunAdmittedEvent, error_payload
from .._harness import Harness, RunLog
from .._harness.replay import Replay
from .._ids import run_ids
from .._jsonvalue import UNSET, JsonValue
from .._observation import (
    EventContext,
    ExecutionContext,
    WorkflowExecution,
    dispatch,
    intercept,
    intercepting,
)
from .._records import RunRecord, fold
from ..errors import ReplayDivergenceError, RunCancelledError
from ..store import EventStore, run_stream
from . import ambient
from .run_stream import RunStream
from .services import RunServices

__all__ = ["RunActor", "read_run_events"]


async def read_run_events(store: EventStore, run_id: str) -> tuple[list[dict[str, Any]], int]:
    """Every event of the run's stream, in order, and the stream's length."""
    events: list[dict[str, Any]] = []
    offset, length = "-1", 0
    while True:
        page = await store.read(run_stream(run_id), offset=offset, limit=1000)
        events.extend(event.data for event in page.events)
        if page.events:
            length = page.events[-1].seq + 1
        offset = page.next_offset
        if page.up_to_date or not page.events:
            return events, length


class RunActor:
    def __init__(
        self,
        header: RunAdmittedEvent,
        services: RunServices,
        *,
        recorded: list[dict[str, Any]] | None = None,
        stream_length: int = 0,
        strict: bool = False,
    ) -> None:
        """``recorded``: the run's events so far, to resume it (``run_resume``, then its
        workflow again from the top, answered from them; ``stream_length`` is the stream's
        length when they were read, the fence of the first append). ``strict``: a replay
        check that treats an operation the log lacks as a divergence."""
        self.run_id = header["runId"]
        self.workflow_name = header["workflowName"]
        self._header = header
        self._services = services
        self._started_ms = parse_timestamp(header["startedAt"])
        if recorded is None:
            self._stream = RunStream(services.store, self.run_id, services.clock)
            self.replay: Replay | None = None
        else:
            last = max((int(event.get("eventIndex", -1)) for event in recorded), default=-1)
            self._stream = RunStream(
                services.store,
                self.run_id,
                services.clock,
                next_seq=stream_length,
                next_index=last + 1,
            )
            self.replay = Replay(recorded, strict=strict)
            newest = recorded[-1].get("timestamp") if recorded else None
            self.replay.heal_since_ms = (
                parse_timestamp(newest) if isinstance(newest, str) else self._started_ms
            )
            self.replay.on_divergence = self._diverged
            self._stream.replay = self.replay
        # Ended from elsewhere (cancelled before this host took it, recovered while it was
        # presumed dead): nothing it does can be recorded any more, so it stops now rather than
        # running the workflow to its end for nobody.
        self._stream.on_fenced = self._fenced
        self._observed = EventContext(self.run_id, self.workflow_name, services.env)
        self._stream.observed_as = self._observed
        self._body: asyncio.Task[JsonValue] | None = None
        self._cancel_reason: str | None = None
        self._harness: Harness | None = None
        self._ended: dict[str, Any] | None = None

    @property
    def record(self) -> RunRecord | None:
        """The run's terminal record once this actor has written its ``run_end``: folded from
        the admission header and that event, as every store projects it, so a caller waiting
        here needs no read of the store (``None`` before, or if the log refused the end)."""
        return None if self._ended is None else fold(self._header, (self._ended,))

    def _fenced(self) -> None:
        self.cancel("The run was ended by another writer.")

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

    async def write_pending(self) -> None:
        """Stop the run's log at what the run has emitted so far, and write it: at a shutdown,
        before its task is cancelled, so that a resumption replays that rather than asks it
        again, and the aborts of the cancellation are not recorded. Raises the stream's
        failure if the log refused it."""
        self._stream.seal()
        await self._stream.flush()
        if self._stream.failure is not None:
            raise self._stream.failure

    @property
    def _divergence(self) -> ReplayDivergenceError | None:
        return None if self.replay is None else self.replay.divergence

    def _diverged(self, divergence: ReplayDivergenceError) -> None:
        """The code no longer makes the operations its log holds: stop it; the run ends with
        the divergence (nothing it emitted since was written)."""
        if self._harness is not None:
            self._harness.abort(divergence.message)
        if self._body is not None and not self._body.done():
            self._body.cancel(divergence.message)

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
        if intercepting():
            execution = WorkflowExecution(
                self.run_id, self.workflow_name, "start", started_at=header["startedAt"]
            )
            context = ExecutionContext(
                self.run_id, self.workflow_name, trace_carrier=header.get("traceCarrier")
            )
            body = intercept(execution, context, self._execute)
        else:
            body = self._execute()
        self._body = asyncio.get_running_loop().create_task(body)
        if self.replay is not None and not self.replay.strict:
            # Written first, past everything the log holds, whatever the replay then matches.
            resume = {k: v for k, v in start.items() if k != "input"}
            live, self.replay.live = self.replay.live, True
            self._stream.emit("run_resume", resume)
            self.replay.live = live
        self._stream.emit("run_start", start)
        if self._cancel_reason is not None:
            self._body.cancel(self._cancel_reason)
        error: BaseException | None = None
        result: JsonValue = None
        try:
            result = await self._body
        except asyncio.CancelledError:
            if self._cancel_reason is None and self._divergence is None:
                raise
        except Exception as failure:
            error = failure
        if self.replay is not None and error is None and self._cancel_reason is None:
            self.replay.finish()  # returned before making every operation the log holds
        if self._divergence is not None:
            error = self._divergence
        elif self._cancel_reason is not None:
            # Requested cancellation decides the outcome, whatever the workflow made of the
            # AbortError its operations saw.
            error = RunCancelledError(run_id=self.run_id, reason=self._cancel_reason)
        # The events still pending are written with run_end, in one append; what the stream
        # refused before is known now (end() handles a refusal of that last append). Its
        # timestamp (the record's endedAt) and its durationMs come from the same instant:
        # endedAt - startedAt == durationMs.
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
            self._ended = ended
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
            models=services.models_for(self._header),
            sink=self._stream,
            clock=services.clock,
            ids=run_ids(services.ids, self.run_id),
            run_id=self.run_id,
        )
        self._harness = harness
        log = RunLog(self._stream)
        context = ActionContext(harness=harness, log=log, input=parsed)
        if services.runtime is not None:
            # This method is the body's own task (see run()), so this holds for it alone.
            ambient.running(services.runtime, log)
        try:
            value = await action.run(context)
        finally:
            await harness.close(self._cancel_reason or "The run ended.")
        return action.serialize_output(value)
