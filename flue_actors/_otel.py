"""OpenTelemetry spans for runs, operations, model turns, tools and tasks (the ``otel`` extra:
``pip install 'flue-actors[otel]'``), named after the GenAI semantic conventions as Flue's
``@flue/opentelemetry`` names them.

A run's span is parented from the W3C ``traceparent`` (and ``tracestate``) it was admitted with
(``POST /workflows/{name}`` headers, or ``runtime.invoke(..., trace_carrier=...)``), which is
stored with the run and travels with it to whatever process hosts it; without one it is a root.
Every span inside the run is a child of the span around it. Content (prompts, messages, tool
arguments and results) is never exported. Importing ``flue_actors`` does not import this module
or OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from ._observation import (
    AgentExecution,
    EventContext,
    ExecutionContext,
    ExecutionOperation,
    Instrumentation,
    ModelExecution,
    TaskExecution,
    ToolExecution,
    WorkflowExecution,
    instrument,
)
from .models import ModelResponse

__all__ = ["INSTRUMENTATION_KEY", "install_opentelemetry", "opentelemetry_instrumentation"]

INSTRUMENTATION_KEY = "flue_actors.otel"
_PROPAGATOR = TraceContextTextMapPropagator()
_installed: Callable[[], None] | None = None


def _describe(
    operation: ExecutionOperation, ctx: ExecutionContext
) -> tuple[str, SpanKind, dict[str, AttributeValue]]:
    attributes: dict[str, AttributeValue] = {"flue.run.id": ctx.run_id}
    if ctx.session is not None:
        attributes["flue.session.name"] = ctx.session
    if ctx.operation_id is not None:
        attributes["flue.operation.id"] = ctx.operation_id
    if isinstance(operation, WorkflowExecution):
        attributes["gen_ai.operation.name"] = "invoke_workflow"
        attributes["flue.workflow.name"] = operation.workflow_name
        attributes["flue.run.phase"] = operation.phase
        return f"invoke_workflow {operation.workflow_name}", SpanKind.INTERNAL, attributes
    if isinstance(operation, AgentExecution):
        attributes["flue.operation.kind"] = operation.operation_kind
        if operation.operation_kind in ("prompt", "skill"):
            attributes["gen_ai.operation.name"] = "invoke_agent"
            return "invoke_agent", SpanKind.INTERNAL, attributes
        return f"flue.operation {operation.operation_kind}", SpanKind.INTERNAL, attributes
    if isinstance(operation, ModelExecution):
        attributes["gen_ai.operation.name"] = "chat"
        attributes["gen_ai.provider.name"] = operation.provider
        attributes["gen_ai.request.model"] = operation.model
        attributes["gen_ai.request.stream"] = True
        attributes["flue.turn.id"] = operation.turn_id
        return f"chat {operation.model}", SpanKind.CLIENT, attributes
    if isinstance(operation, ToolExecution):
        attributes["gen_ai.operation.name"] = "execute_tool"
        attributes["gen_ai.tool.name"] = operation.tool_name
        attributes["gen_ai.tool.call.id"] = operation.tool_call_id
        return f"execute_tool {operation.tool_name}", SpanKind.INTERNAL, attributes
    assert isinstance(operation, TaskExecution)
    attributes["gen_ai.operation.name"] = "invoke_agent"
    attributes["flue.task.id"] = operation.task_id
    if operation.agent is not None:
        attributes["gen_ai.agent.name"] = operation.agent
        return f"invoke_agent {operation.agent}", SpanKind.INTERNAL, attributes
    return "invoke_agent", SpanKind.INTERNAL, attributes


def _response_attributes(response: ModelResponse) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.usage.input_tokens": response.usage.input
        + response.usage.cache_read
        + response.usage.cache_write,
        "gen_ai.usage.output_tokens": response.usage.output,
        "gen_ai.response.finish_reasons": [response.stop_reason],
    }
    if response.response_id is not None:
        attributes["gen_ai.response.id"] = response.response_id
    if response.response_model is not None:
        attributes["gen_ai.response.model"] = response.response_model
    return attributes


def opentelemetry_instrumentation(
    *, tracer_provider: TracerProvider | None = None, key: str | None = INSTRUMENTATION_KEY
) -> Instrumentation:
    """The instrumentation that makes the spans; install it with ``instrument(...)``. Spans go
    to ``tracer_provider`` (default: the global one the application configured)."""
    tracer: Tracer = trace.get_tracer("flue_actors", tracer_provider=tracer_provider)

    async def interceptor(
        operation: ExecutionOperation,
        ctx: ExecutionContext,
        proceed: Callable[[], Awaitable[Any]],
    ) -> Any:
        parent: otel_context.Context | None = None
        if isinstance(operation, WorkflowExecution):
            # A run starts from what it was admitted with, whatever is current where it runs
            # (a request's span, a host's idle context): the caller's trace, or a root.
            carrier = dict(ctx.trace_carrier or {})
            parent = _PROPAGATOR.extract(carrier, context=otel_context.Context())
        name, kind, attributes = _describe(operation, ctx)
        with tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes
        ) as span:
            result = await proceed()
            if isinstance(result, ModelResponse):
                span.set_attributes(_response_attributes(result))
                if result.stop_reason == "error":
                    span.set_status(trace.StatusCode.ERROR, "model error")
            return result

    def observer(observation: dict[str, Any], ctx: EventContext) -> None:
        # Run logs become events of the span they happen in.
        if observation.get("type") == "log":
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(
                    "flue.log",
                    {
                        "flue.log.level": str(observation.get("level")),
                        "flue.log.message": str(observation.get("message")),
                    },
                )

    return Instrumentation(observe=observer, interceptor=interceptor, key=key)


def install_opentelemetry(*, tracer_provider: TracerProvider | None = None) -> Callable[[], None]:
    """Install the OpenTelemetry instrumentation in this process once (later calls return the
    first call's remover), so a workflow module may call it at import time: it then runs in
    every process that loads the workflows, Ray hosts included."""
    global _installed
    if _installed is None:
        remove = instrument(opentelemetry_instrumentation(tracer_provider=tracer_provider))

        def uninstall() -> None:
            global _installed
            _installed = None
            remove()

        _installed = uninstall
    return _installed
