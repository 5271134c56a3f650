"""Live observation of runs in this process: ``observe()``, ``instrument()`` and the execution
interceptors (Flue's ``observe``, ``instrument`` and ``FlueExecutionInterceptor``, reference 1.19).

``observe(subscriber)`` sees every event every run in this process emits, as it is emitted,
with detail that is never stored (``turn_request``: the model request with its input; a tool
call's ``args``). An *interceptor* wraps the execution of runs, agent operations, model turns,
tool calls and tasks (``await next()`` runs the work), which is where tracing activates its
spans. Both are process-wide: register them where the workflows are loaded (a workflow module,
or one it imports) to have them in every process that runs workflows, Ray hosts included.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

from .errors import FlueError

__all__ = [
    "AgentExecution",
    "EventContext",
    "ExecutionContext",
    "ExecutionInterceptor",
    "ExecutionOperation",
    "Instrumentation",
    "InstrumentationAlreadyInstalledError",
    "ModelExecution",
    "ObservationSubscriber",
    "TaskExecution",
    "ToolExecution",
    "WorkflowExecution",
    "instrument",
    "observe",
]

logger = logging.getLogger("flue_actors.observe")
T = TypeVar("T")


@dataclass(frozen=True)
class EventContext:
    """Where an observed event comes from: its run (``id``), workflow and environment."""

    id: str
    workflow_name: str
    env: Mapping[str, str] = field(default_factory=dict)


ObservationSubscriber: TypeAlias = Callable[[dict[str, Any], EventContext], object]
"""``subscriber(observation, ctx)``: a plain or an async function; its result is not awaited."""

_subscribers: list[ObservationSubscriber] = []


def observe(subscriber: ObservationSubscriber) -> Callable[[], None]:
    """Call ``subscriber(observation, ctx)`` for every event any run in this process emits, from
    now on (no replay), in order, after the event is stamped. Each subscriber gets a deep copy of
    the event with its live-only detail (Flue shares one frozen copy; Python has no deep freeze,
    so a copy each keeps one subscriber's changes from the others and the run). A subscriber that
    raises, or whose coroutine fails, is logged and changes nothing for the run or the other
    subscribers. Returns the function that unsubscribes it."""
    _subscribers.append(subscriber)

    def unsubscribe() -> None:
        if subscriber in _subscribers:
            _subscribers.remove(subscriber)

    return unsubscribe


def observing() -> bool:
    """Whether anyone is observing: emitters skip building live-only detail otherwise."""
    return bool(_subscribers)


def _report(error: BaseException) -> None:
    logger.error("[flue:observe] subscriber failed: %r", error, exc_info=error)


def _settled(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _report(task.exception())  # type: ignore[arg-type]


def dispatch(
    event: Mapping[str, Any], ctx: EventContext, detail: Mapping[str, Any] | None = None
) -> None:
    """Hand one emitted event (with its live-only ``detail``) to every subscriber."""
    if not _subscribers:
        return
    observation = {**event, **detail} if detail else dict(event)
    for subscriber in list(_subscribers):
        try:
            outcome = subscriber(copy.deepcopy(observation), ctx)
            if inspect.isawaitable(outcome):
                asyncio.ensure_future(outcome).add_done_callback(_settled)
        except Exception as error:
            _report(error)


# --- execution interception ---------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowExecution:
    """A run's execution, from ``run_start`` (or ``run_resume``) to its ``run_end``."""

    run_id: str
    workflow_name: str
    phase: Literal["start", "resume"]
    started_at: str
    type: Literal["workflow"] = "workflow"


@dataclass(frozen=True)
class AgentExecution:
    """A session operation: ``prompt``, ``skill``, ``task``, ``shell`` or ``compact``."""

    operation_id: str
    operation_kind: str
    type: Literal["agent"] = "agent"


@dataclass(frozen=True)
class ModelExecution:
    """One model call (a turn): ``next()`` returns the provider's ``ModelResponse``."""

    turn_id: str
    provider: str
    model: str
    type: Literal["model"] = "model"


@dataclass(frozen=True)
class ToolExecution:
    tool_call_id: str
    tool_name: str
    type: Literal["tool"] = "tool"


@dataclass(frozen=True)
class TaskExecution:
    """A delegated task: the child session's prompt."""

    task_id: str
    agent: str | None = None
    type: Literal["task"] = "task"


ExecutionOperation: TypeAlias = (
    WorkflowExecution | AgentExecution | ModelExecution | ToolExecution | TaskExecution
)


@dataclass(frozen=True)
class ExecutionContext:
    """What is known about where an operation runs. ``trace_carrier`` is the W3C trace context
    (``traceparent``, ``tracestate``) the run was admitted with, if any."""

    run_id: str
    workflow_name: str | None = None
    session: str | None = None
    operation_id: str | None = None
    turn_id: str | None = None
    task_id: str | None = None
    trace_carrier: Mapping[str, str] | None = None


def context_of(run_id: str, correlation: Mapping[str, Any]) -> ExecutionContext:
    """The execution context of a harness operation, from its events' correlation fields."""
    return ExecutionContext(
        run_id,
        session=correlation.get("session"),
        operation_id=correlation.get("operationId"),
        turn_id=correlation.get("turnId"),
        task_id=correlation.get("taskId"),
    )


ExecutionInterceptor: TypeAlias = Callable[
    [ExecutionOperation, ExecutionContext, Callable[[], Awaitable[Any]]], Awaitable[Any]
]
"""``async def interceptor(operation, ctx, next)``: must ``return await next()`` exactly once
(it may do things around it, and must let its exceptions through)."""

_interceptors: list[ExecutionInterceptor] = []


def intercepting() -> bool:
    """Whether an interceptor is installed. Without one (the common case) an operation's
    work is awaited as it is: a hot path need not describe it (operation, context) first."""
    return bool(_interceptors)


async def intercept(
    operation: ExecutionOperation,
    ctx: ExecutionContext,
    work: Callable[[], Awaitable[T]],
) -> T:
    """Run ``work`` inside every registered interceptor, the first registered outermost."""
    if not _interceptors:
        return await work()
    chain = list(_interceptors)

    async def step(index: int) -> Any:
        if index == len(chain):
            return await work()
        called = False

        async def proceed() -> Any:
            nonlocal called
            if called:
                raise RuntimeError("Flue execution next() called more than once.")
            called = True
            return await step(index + 1)

        return await chain[index](operation, ctx, proceed)

    result: T = await step(0)
    return result


# --- instrumentations ---------------------------------------------------------------------------


class InstrumentationAlreadyInstalledError(FlueError):
    type = "instrumentation_already_installed"

    def __init__(self) -> None:
        super().__init__(
            "An instrumentation owner of this kind is already installed.",
            details="Dispose the active instrumentation before installing its replacement.",
        )


@dataclass(eq=False)
class Instrumentation:
    """An observer and an interceptor installed together (``instrument(...)``). ``key`` makes
    it one of a kind: a second one with the same key is refused. ``dispose`` runs when it is
    removed (flushing an exporter, say)."""

    observe: ObservationSubscriber
    interceptor: ExecutionInterceptor
    dispose: Callable[[], object] | None = None
    key: str | None = None


_installed: dict[int, tuple[Instrumentation, Callable[[], None]]] = {}
_installed_keys: dict[str, Instrumentation] = {}


def instrument(instrumentation: Instrumentation) -> Callable[[], None]:
    """Install ``instrumentation`` in this process; returns the function that removes it (and
    calls its ``dispose``). Installing the same object again returns the same function."""
    existing = _installed.get(id(instrumentation))
    if existing is not None and existing[0] is instrumentation:
        return existing[1]
    key = instrumentation.key
    if key is not None and key in _installed_keys:
        raise InstrumentationAlreadyInstalledError()
    stop_observing = observe(instrumentation.observe)
    _interceptors.append(instrumentation.interceptor)
    if key is not None:
        _installed_keys[key] = instrumentation
    disposed = False

    def dispose() -> None:
        nonlocal disposed
        if disposed:
            return
        disposed = True
        stop_observing()
        if instrumentation.interceptor in _interceptors:
            _interceptors.remove(instrumentation.interceptor)
        _installed.pop(id(instrumentation), None)
        if key is not None and _installed_keys.get(key) is instrumentation:
            del _installed_keys[key]
        if instrumentation.dispose is not None:
            instrumentation.dispose()

    _installed[id(instrumentation)] = (instrumentation, dispose)
    return dispose
