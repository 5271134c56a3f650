"""The agent loop: model turns (with retries of transient errors) and tool calls, until the
model answers without calling a tool, every step recorded as events.

Functions over a :class:`SessionState` (its conversation, scope and services), kept apart from
the session's operation bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from .._definitions import ToolDefinition
from .._jsonvalue import dumps
from .._messages import (
    AssistantMessage,
    ImageContent,
    Message,
    ToolResultMessage,
    UserMessage,
    as_json,
    assistant_content,
)
from .._observation import ModelExecution, context_of, intercept, intercepting, observing
from ..errors import ModelRequestError, OperationFailedError
from ..models import (
    ModelRequest,
    ModelResponse,
    ResolvedModel,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingLevel,
    ThinkingStart,
    Usage,
)
from . import compaction
from .batch_records import batched_turn, pending_batches
from .framework import FrameworkTool, run_framework_tool
from .outcomes import ModelRef, Outcome, PromptResponse, PromptResultResponse
from .payloads import Correlation, ModelAsked, TurnCorrelation
from .redaction import redact, redact_all
from .replay import recorded_turn, replay_of, response_from_turn, write_ahead
from .results import ResultSpec, run_with_result
from .turns import model_retry_log, response_info, turn_error

if TYPE_CHECKING:
    from .session_state import SessionState

__all__ = ["agent_loop", "assistant_message", "model_turn", "run_prompt"]


def run_prompt(
    session: SessionState,
    correlation: Correlation,
    text: str,
    *,
    model: str | None,
    thinking_level: ThinkingLevel | None,
    images: list[ImageContent],
    spec: ResultSpec | None,
    tools: Sequence[ToolDefinition] = (),
) -> Awaitable[Outcome]:
    """A prompt's work, shared by prompt, skill and a task's child: one agent loop (its own
    coroutine, returned as it is), or with ``spec`` the loop repeated until the model settles
    on a structured result."""
    resolved = session.resolve(model)
    if spec is None:
        return agent_loop(
            session, correlation, text, resolved, thinking_level, images, call_tools=tools
        )
    turns = partial(agent_loop, session, correlation, resolved=resolved, call_tools=tools)
    return _with_result(turns, resolved, text, thinking_level, images, spec)


async def _with_result(
    turns: Callable[..., Awaitable[Outcome]],
    resolved: ResolvedModel,
    text: str,
    thinking_level: ThinkingLevel | None,
    images: list[ImageContent],
    spec: ResultSpec,
) -> Outcome:
    """The agent loop (``turns``: the session's, bound to its model and call tools) repeated
    until the model settles on a structured result."""

    async def loop(
        message: str,
        attached: list[ImageContent],
        framework: Mapping[str, FrameworkTool],
        stop: Callable[[], bool],
    ) -> tuple[str, Usage]:
        outcome = await turns(
            text=message,
            thinking_level=thinking_level,
            images=attached,
            extra=framework,
            stop=stop,
        )
        return outcome.text, outcome.usage

    data, usage = await run_with_result(loop, text, images, spec)
    wire = spec.to_wire(data)
    response = PromptResultResponse(
        data=data,
        usage=usage,
        model=ModelRef(provider=resolved.provider_name, id=resolved.model_id),
    )
    return Outcome(value=response, usage=usage, wire_result={"data": wire}, text=dumps(wire))


async def agent_loop(
    session: SessionState,
    correlation: Correlation,
    text: str,
    resolved: ResolvedModel,
    thinking_level: ThinkingLevel | None,
    images: list[ImageContent],
    *,
    extra: Mapping[str, FrameworkTool] | None = None,
    stop: Callable[[], bool] | None = None,
    call_tools: Sequence[ToolDefinition] = (),
) -> Outcome:
    # extra: per-call framework tools (finish / give_up); stop: ends the loop after a tool
    # batch, without another model turn (a structured result was settled); call_tools: the
    # call's tools=, beside the agent's (a name conflict fails the operation, as in Flue).
    # The workspace's instructions and skills, and the agent's MCP servers' tools.
    await session.prepare(correlation)
    emit = session.services.emit
    tools = session.scope.tools.extended(call_tools)
    await tools.ready()  # a call's tools= beside MCP tools: the run's connections are reused
    framework = {**session.framework_tools(call_tools), **(extra or {})}
    user: UserMessage = {
        "role": "user",
        "content": [{"type": "text", "text": text}, *images],
        "timestamp": session.services.clock.now_ms(),
    }
    emit("agent_start", {**correlation})
    session.conversation.append(user)
    produced: list[Message] = [user]
    usage = Usage()
    pending_user: UserMessage | None = user
    level = thinking_level or session.scope.thinking_level
    retry = session.retry
    kind = session.active_kind or "prompt"
    while True:
        # Compaction near the model's window, before the request is built from the messages.
        usage += await compaction.compact_if_needed(session, correlation, resolved)
        request = ModelRequest(
            model=resolved.model_id,
            messages=as_json(session.conversation.snapshot()),
            system_prompt=session.scope.system_prompt,
            tools=[*tools.specs, *(tool.spec for tool in framework.values())],
            thinking_level=level,
        )
        attempt = 0
        overflow_recovered = False  # a turn is retried at most once after compacting
        while True:
            # Every attempt is a turn of its own: a failed one is recorded (turn isError)
            # before the retry, so the log shows what each attempt cost and why it failed.
            turn_id = "turn_" + session.services.ids.ulid()
            turn: TurnCorrelation = {**correlation, "turnId": turn_id}
            emit("turn_start", {"turnId": turn_id, "purpose": "agent", **correlation})
            if pending_user is not None:
                shown = redact(pending_user)
                emit("message_start", {"message": shown, **turn})
                emit("message_end", {"message": shown, **turn})
                pending_user = None
            try:
                response, assistant = await model_turn(session, request, resolved, turn)
                break
            except ModelRequestError as error:
                if error.code == "context_overflow" and not overflow_recovered:
                    overflow_recovered = True
                    compacted, spent = await compaction.recover_from_overflow(
                        session, correlation, resolved
                    )
                    usage += spent
                    if compacted:
                        snapshot = as_json(session.conversation.snapshot())
                        request = replace(request, messages=snapshot)
                        continue
                if not error.transient or attempt >= retry.max_retries:
                    raise OperationFailedError(kind=kind, reason=str(error)) from error
                attempt += 1
                delay_ms = retry.delay_ms(attempt, error)
                emit("log", model_retry_log(error, attempt, delay_ms, correlation))
                # An abort lands here as CancelledError: no further model call is made.
                # A replayed failure was waited for the first time.
                if replay_of(session.services.sink, correlation) is None:
                    await retry.sleep(delay_ms / 1000)
            except Exception as error:
                raise OperationFailedError(kind=kind, reason=str(error)) from error
        usage += response.usage
        session.conversation.append(assistant)
        produced.append(assistant)
        emit("message_end", {"message": redact(assistant), **turn})
        tool_results: list[ToolResultMessage] = []
        for call in response.tool_calls:
            tool = framework.get(call["name"])
            if tool is not None:
                result = await run_framework_tool(
                    tool, call, turn, sink=session.services.sink, clock=session.services.clock
                )
            else:
                result = await tools.call(call, turn)
            tool_results.append(result)
            session.conversation.append(result)
            produced.append(result)
        emit(
            "turn_messages",
            {
                "purpose": "agent",
                "message": redact(assistant),
                "toolResults": redact_all(tool_results),
                **turn,
            },
        )
        if not tool_results or (stop is not None and stop()):
            break
    emit("agent_end", {"messages": redact_all(produced), **correlation})
    final = PromptResponse(
        text=response.text,
        usage=usage,
        model=ModelRef(provider=resolved.provider_name, id=resolved.model_id),
    )
    return Outcome(value=final, usage=usage, wire_result={"text": final.text}, text=final.text)


async def model_turn(
    session: SessionState, request: ModelRequest, resolved: ResolvedModel, turn: TurnCorrelation
) -> tuple[ModelResponse, AssistantMessage]:
    emit = session.services.emit
    started = session.services.clock.now_ms()
    emit(
        "message_start",
        {"message": {"role": "assistant", "content": [], "timestamp": started}, **turn},
    )

    def on_stream(event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            emit("text_delta", {"text": event.text, **turn})
        elif isinstance(event, ThinkingStart):
            emit("thinking_start", {"contentIndex": event.content_index, **turn})
        elif isinstance(event, ThinkingDelta):
            emit(
                "thinking_delta",
                {"contentIndex": event.content_index, "delta": event.delta, **turn},
            )
        elif isinstance(event, ThinkingEnd):
            emit(
                "thinking_end",
                {"contentIndex": event.content_index, "content": event.content, **turn},
            )

    request_info: dict[str, Any] = {
        "providerId": resolved.provider_name,
        "providerName": resolved.provider_name,
        "requestedModel": resolved.model_id,
        "api": resolved.provider.api,
    }
    if request.thinking_level is not None:
        request_info["reasoningLevel"] = request.thinking_level
    turn_event: ModelAsked = {"purpose": "agent", "request": request_info}
    replay, batches = pending_batches(session, turn)
    recorded = recorded_turn(session.services.sink, turn, "agent")
    if recorded is None and observing():  # a replayed turn asks no model
        session.services.announce(
            "turn_request",
            {**turn_event, "request": {**request_info, "input": request_input(request)}, **turn},
        )
    try:
        if recorded is not None:
            response = response_from_turn(recorded)
        else:
            await write_ahead(session.services.sink)
            with batched_turn(session, turn, replay, batches, resolved.provider):
                if intercepting():
                    response = await intercept(
                        ModelExecution(turn["turnId"], resolved.provider_name, resolved.model_id),
                        context_of(session.run_id, turn),
                        lambda: resolved.provider.complete(request, on_stream),
                    )
                else:
                    response = await resolved.provider.complete(request, on_stream)
    except asyncio.CancelledError:
        emit(
            "turn",
            {
                **turn_event,
                "durationMs": session.services.clock.now_ms() - started,
                "isError": True,
                "response": {"finishReason": "aborted"},
                **turn,
            },
        )
        raise
    except Exception as error:
        emit(
            "turn",
            {
                **turn_event,
                "durationMs": session.services.clock.now_ms() - started,
                "isError": True,
                "response": {"error": turn_error(error)},
                **turn,
            },
        )
        raise
    assistant = assistant_message(session, response, resolved)
    emit(
        "turn",
        {
            **turn_event,
            "durationMs": session.services.clock.now_ms() - started,
            "isError": response.stop_reason in ("error", "aborted"),
            "response": response_info(response, assistant),
            **turn,
        },
    )
    if response.stop_reason == "error":
        raise ModelRequestError(response.error_message or "model error")
    return response, assistant


def request_input(request: ModelRequest) -> dict[str, Any]:
    """A model request's input as ``turn_request`` shows it (images redacted, as in events)."""
    shown: dict[str, Any] = {"messages": [redact(message) for message in request.messages]}
    if request.system_prompt is not None:
        shown["systemPrompt"] = request.system_prompt
    if request.tools:
        shown["tools"] = [
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            for tool in request.tools
        ]
    return shown


def assistant_message(
    session: SessionState, response: ModelResponse, resolved: ResolvedModel
) -> AssistantMessage:
    return {
        "role": "assistant",
        "content": assistant_content(response.content),
        "api": resolved.provider.api,
        "provider": resolved.provider_name,
        "model": response.response_model or resolved.model_id,
        "usage": response.usage.to_wire(),
        "stopReason": response.stop_reason,
        "timestamp": session.services.clock.now_ms(),
    }
