"""``FlueTestKit``: a runtime on a private in-memory log with the fake model and fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from typing_extensions import TypeVar as DefaultedTypeVar

from .._clock import StepClock
from .._definitions import WorkflowDefinition
from .._events import RunError
from .._ids import SequentialIds
from .._jsonvalue import UNSET
from .._records import RunRecord, RunStatus, admission_header
from .._runtime import Runtime, WorkflowRegistry
from .._runtime.discovery import DiscoveredWorkflow
from ..models import ModelRegistry, RetryPolicy
from ..store import SqliteEventStore
from ._fake_model import FakeModel

__all__ = ["FlueTestKit", "RunResult"]

T = TypeVar("T")
OutputT = TypeVar("OutputT")
# A run started by name has a workflow the types cannot see: its RunResult is RunResult[Any].
ResultOutputT = DefaultedTypeVar("ResultOutputT", default=Any)


@dataclass(frozen=True)
class RunResult(Generic[ResultOutputT]):
    """A finished run as a test sees it, typed by what its workflow returns:
    ``flue.run(summarize, ...)`` is a ``RunResult[SummarizeOutput]``.

    ``result`` is the run's result as JSON, exactly as the log holds it (``None`` when there is
    none), typed ``Any`` as JSON from ``httpx``'s ``Response.json()`` is, so that
    ``run.result["summary"]`` type-checks in a test; ``output`` is that result validated back
    into the workflow's output type (a ``SummarizeOutput``), for checks the types follow.
    """

    run_id: str
    status: RunStatus
    result: Any
    error: RunError | None
    record: RunRecord
    events: list[dict[str, Any]]
    workflow: WorkflowDefinition[ResultOutputT] = field(repr=False, compare=False)

    @property
    def output(self) -> ResultOutputT:
        """The result as the workflow's output type (its output schema validates it back from
        JSON). A run that did not complete has none: asking fails the test, naming its error."""
        if self.status != "completed":
            raise AssertionError(
                f"run {self.run_id} ended {self.status}, not completed, so it has no output: "
                f"{self.error!r}"
            )
        return self.workflow.action.parse_output(self.result)

    @property
    def event_types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def events_of(self, type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == type]


def _default_name(definition: WorkflowDefinition) -> str:
    module = getattr(definition.action.run, "__module__", "") or ""
    stem = module.rsplit(".", 1)[-1]
    return stem if stem and stem not in ("__main__", "builtins") else definition.action.run.__name__


class FlueTestKit:
    """What the ``flue`` fixture gives a test.

    Every agent's model is the :class:`FakeModel`; ids count up from 1 and the clock starts at
    2026-01-01T00:00:00Z and moves 1 ms per reading, so a run's events are the same every time.
    ``run`` is synchronous (it drives a private event loop); in an ``async def`` test use
    ``await flue.run_async(...)``.

    Retries of transient model errors do not wait: ``sleeps`` records each backoff (seconds)
    instead, and the jitter is fixed (0), so the delays are 1.5 s, 3 s, 6 s unless a
    ``retry_after`` is longer.
    """

    def __init__(
        self,
        fake_model: FakeModel,
        *,
        workflows: Mapping[str, WorkflowDefinition] | str | Path | None = None,
        env: Mapping[str, str] | None = None,
        always_replay: bool = False,
    ) -> None:
        self.fake_model = fake_model
        # Every run this kit makes is then checked by replaying it, whole and interrupted
        # after each of its operations (see ``replay``); a run that fails the check fails
        # the test.
        self.always_replay = always_replay
        if workflows is None:
            registry = WorkflowRegistry()
        elif isinstance(workflows, (str, Path)):
            registry = WorkflowRegistry.discover(workflows)
        else:
            registry = WorkflowRegistry.from_definitions(workflows)
        self.clock = StepClock()
        self.sleeps: list[float] = []
        retry = RetryPolicy(sleep=self._sleep, jitter=lambda: 0.0)
        self.runtime = Runtime(
            registry,
            store=SqliteEventStore(":memory:"),
            models=ModelRegistry(override=fake_model, retry=retry),
            clock=self.clock,
            ids=SequentialIds(),
            env=dict(env or {}),
        )
        self._runner: asyncio.Runner | None = None

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # still a point where an abort can land

    def register(self, definition: WorkflowDefinition, name: str | None = None) -> str:
        """Make a definition runnable under ``name`` (default: its module's name)."""
        found = self.runtime.workflows.find(definition)
        if found is not None:
            return found.name
        name = name or _default_name(definition)
        self.runtime.workflows.register(DiscoveredWorkflow(name=name, definition=definition))
        return name

    @overload
    async def run_async(
        self, workflow: WorkflowDefinition[OutputT], input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[OutputT]: ...

    @overload
    async def run_async(
        self, workflow: str, input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[Any]: ...

    async def run_async(
        self, workflow: WorkflowDefinition[Any] | str, input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[Any]:
        if isinstance(workflow, WorkflowDefinition):
            self.register(workflow)
        exhausted_before = self.fake_model.exhausted
        receipt = await self.runtime.invoke(workflow, input)
        record = await self.runtime.wait(receipt.run_id, timeout=timeout)
        if self.fake_model.exhausted is not exhausted_before and self.fake_model.exhausted:
            raise self.fake_model.exhausted
        error = record.error
        if isinstance(workflow, str):  # the invocation found it, so the registry has it
            workflow = self.runtime.workflows.get(workflow).definition
        events = await self.runtime.events(record.run_id)
        if self.always_replay:
            await self._check_replays(record, events, interrupted=True)
        return RunResult(
            run_id=record.run_id,
            status=record.status,
            result=None if record.result is UNSET else record.result,
            error=error,
            record=record,
            events=events,
            workflow=workflow,
        )

    async def _check_replays(
        self, record: RunRecord, events: list[dict[str, Any]], *, interrupted: bool
    ) -> None:
        from ._replay_check import check_interrupted_replays, check_replay

        header = admission_header(record)
        services = self.runtime.services
        await check_replay(header, events, services)
        if interrupted:
            await check_interrupted_replays(header, events, services)

    async def replay_async(self, run: RunResult[Any]) -> None:
        """``replay`` in an ``async def`` test."""
        await self._check_replays(run.record, run.events, interrupted=False)

    def replay(self, run: RunResult[Any]) -> None:
        """Run the workflow of a finished ``run`` again against its log, as Temporal's Replayer
        does: every operation is answered from the log (no model call, no tool or command
        run), and the test fails with :class:`~flue_actors.testing.ReplayMismatchError` and
        a diff of the two operation lists if the code no longer makes exactly those
        operations or ends otherwise. The workflow is this kit's of the run's name, so a run
        made by another kit (the old code) checks the code registered here (the new)."""
        self.drive(self.replay_async(run))

    @overload
    def run(
        self, workflow: WorkflowDefinition[OutputT], input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[OutputT]: ...

    @overload
    def run(
        self, workflow: str, input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[Any]: ...

    def run(
        self, workflow: WorkflowDefinition[Any] | str, input: Any = UNSET, *, timeout: float = 30.0
    ) -> RunResult[Any]:
        """Invoke ``workflow`` with ``input``, wait for its end, and return what happened."""
        return self.drive(self.run_async(workflow, input, timeout=timeout))

    def drive(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end on the kit's event loop, the one its runtime lives on
        (the pytest plugin runs an ``async def`` test that uses ``flue`` this way)."""
        return self._loop().run(coroutine)

    def _loop(self) -> asyncio.Runner:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner

    async def aclose(self) -> None:
        await self.runtime.close()

    def close(self) -> None:
        self.drive(self.aclose())
        if self._runner is not None:
            self._runner.close()
            self._runner = None
