"""Sessions: one conversation, one operation at a time, every step recorded as events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .._clock import Clock
from .._definitions import ToolDefinition
from .._events import error_payload
from .._ids import IdSource
from .._messages import ImageContent, as_json
from .._observation import AgentExecution, context_of, intercept, intercepting
from ..errors import (
    AbortError,
    SessionBusyError,
    SkillNotRegisteredError,
)
from ..models import ThinkingLevel, Usage
from ..sandbox import SandboxFs, ShellResult
from . import compaction
from .agent_loop import run_prompt
from .call import AbortSignal, CallHandle
from .outcomes import ModelRef, Outcome, PromptResponse, PromptResultResponse
from .payloads import Correlation, Lineage
from .redaction import check_images
from .results import ResultSpec
from .scope import AgentScope
from .session_state import Services, SessionState
from .sink import EventSink
from .skills import skill_prompt
from .tasks import plan_task, run_task
from .tools import ToolBox

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["ModelRef", "PromptResponse", "PromptResultResponse", "Session"]

T = TypeVar("T")


class _Operation:
    """One operation's bracket in the log: ``operation_start`` when made, then exactly one
    ``operation`` and ``idle`` however it ends; ending it frees the session."""

    def __init__(self, state: SessionState, kind: str) -> None:
        self._state = state
        self.kind = kind
        self.id = "op_" + state.services.ids.ulid()
        self.correlation: Correlation = {**state.correlation(), "operationId": self.id}
        self._started = state.services.clock.now_ms()
        self.ended = False
        self.handle: CallHandle[Any] | None = None
        state.active_kind = kind
        state.services.emit(
            "operation_start", {"operationId": self.id, "operationKind": kind, **self.correlation}
        )

    async def run(self, body: Callable[[Correlation], Awaitable[Outcome]]) -> Any:
        """Run ``body`` as this operation (in its own task), and end the operation with it.
        Methods rather than closures: a session starts one per call, on every run."""
        try:
            if intercepting():
                execution = AgentExecution(self.id, self.kind)
                context = context_of(self._state.run_id, self.correlation)
                outcome = await intercept(execution, context, lambda: body(self.correlation))
            else:
                outcome = await body(self.correlation)
        except asyncio.CancelledError:
            reason = self.handle.abort_reason if self.handle is not None else None
            self.fail(AbortError(reason or "The operation was cancelled."))
            if reason is not None:
                raise AbortError(reason) from None
            raise
        except Exception as error:
            self.fail(error)
            raise
        self.succeed(outcome)
        return outcome.value

    def settled(self, _task: asyncio.Task[Any]) -> None:
        """The operation's task is done: if it was aborted before its first step, run()
        never ran, and the operation is closed here (otherwise it has ended already)."""
        reason = self.handle.abort_reason if self.handle is not None else None
        self.fail(AbortError(reason or "The operation was aborted."))

    def _end(self) -> int | None:
        """End the operation; how long it took, or None if it had ended already."""
        if self.ended:
            return None
        self.ended = True
        self._state.active_kind = None
        return self._state.services.clock.now_ms() - self._started

    def succeed(self, outcome: Outcome) -> None:
        duration = self._end()
        if duration is None:
            return
        services = self._state.services
        services.emit(
            "operation",
            {
                "operationId": self.id,
                "operationKind": self.kind,
                "durationMs": duration,
                "isError": False,
                "result": outcome.wire_result,
                "usage": outcome.usage.to_wire(),
                **self.correlation,
            },
        )
        services.emit("idle", self._state.correlation())

    def fail(self, error: BaseException) -> None:
        duration = self._end()
        if duration is None:
            return
        services = self._state.services
        services.emit(
            "operation",
            {
                "operationId": self.id,
                "operationKind": self.kind,
                "durationMs": duration,
                "isError": True,
                "error": error_payload(error),
                **self.correlation,
            },
        )
        services.emit("idle", self._state.correlation())


def _prompt_body(
    state: SessionState,
    text: str | Callable[[Correlation], Awaitable[str]],
    model: str | None,
    thinking_level: ThinkingLevel | None,
    images: list[ImageContent],
    spec: ResultSpec | None,
    tools: Sequence[ToolDefinition],
    correlation: Correlation,
) -> Awaitable[Outcome]:
    """A prompt or skill operation's work (a function, not a closure per call; for a prompt,
    the agent loop's own coroutine, without one of its own around it). A skill's text is
    known only once its operation runs."""
    if not isinstance(text, str):
        return _skill_body(state, text, (model, thinking_level, images, spec, tools), correlation)
    return run_prompt(
        state, correlation, text, model=model, thinking_level=thinking_level,
        images=images, spec=spec, tools=tools,
    )  # fmt: skip


async def _skill_body(
    state: SessionState,
    text: Callable[[Correlation], Awaitable[str]],
    rest: tuple[
        str | None,
        ThinkingLevel | None,
        list[ImageContent],
        ResultSpec | None,
        Sequence[ToolDefinition],
    ],
    correlation: Correlation,
) -> Outcome:
    return await _prompt_body(state, await text(correlation), *rest, correlation)


class Session:
    """A named conversation in a run's harness. Get one with ``await harness.session()``."""

    def __init__(
        self,
        harness: Harness,
        name: str,
        *,
        conversation_id: str,
        sink: EventSink,
        clock: Clock,
        ids: IdSource,
        tools: ToolBox,
        scope: AgentScope | None = None,
        lineage: Lineage | None = None,
    ) -> None:
        # Everything the agent loop, compaction and tasks read and change; the session itself
        # only starts operations and brackets them in the log.
        self.state = SessionState(
            harness,
            name,
            conversation_id=conversation_id,
            services=Services(sink=sink, clock=clock, ids=ids),
            scope=scope or AgentScope.root(harness.config, tools, depth=harness.depth),
            lineage=lineage,
        )

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def conversation_id(self) -> str:
        return self.state.conversation_id

    @property
    def fs(self) -> SandboxFs:
        return self.state.fs()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (a copy)."""
        return as_json(self.state.conversation.snapshot())

    # --- operations -----------------------------------------------------------------------------

    @overload
    def prompt(
        self,
        text: str,
        *,
        result: None = None,
        model: str | None = None,
        thinking_level: ThinkingLevel | None = None,
        images: Sequence[dict[str, Any]] = (),
        tools: Sequence[ToolDefinition] = (),
        signal: AbortSignal | None = None,
    ) -> CallHandle[PromptResponse]: ...

    @overload
    def prompt(
        self,
        text: str,
        *,
        result: type[T],
        model: str | None = None,
        thinking_level: ThinkingLevel | None = None,
        images: Sequence[dict[str, Any]] = (),
        tools: Sequence[ToolDefinition] = (),
        signal: AbortSignal | None = None,
    ) -> CallHandle[PromptResultResponse[T]]: ...

    def prompt(
        self,
        text: str,
        *,
        result: Any = None,
        model: str | None = None,
        thinking_level: ThinkingLevel | None = None,
        images: Sequence[dict[str, Any]] = (),
        tools: Sequence[ToolDefinition] = (),
        signal: AbortSignal | None = None,
    ) -> CallHandle[Any]:
        """Send ``text`` to the agent and run its loop (model turns, tool calls) to the end.

        With ``result`` (a pydantic model or any type) the model must answer by calling
        ``finish`` with a matching value, and the handle resolves to a
        :class:`PromptResultResponse`. ``images`` (``{"type": "image", "data": base64,
        "mimeType": ...}``) go to the model with the text; events show them with their data
        omitted. ``tools`` are offered for this call only, beside the agent's; ``signal``
        (an :class:`asyncio.Event`, say) aborts the call when set."""
        if not isinstance(text, str):
            raise TypeError("prompt text must be a string")
        return self._start_prompt(
            "prompt", text, result, model, thinking_level, images, tools, signal
        )

    def skill(
        self,
        name: str,
        *,
        args: Any = None,
        result: Any = None,
        model: str | None = None,
        thinking_level: ThinkingLevel | None = None,
        images: Sequence[dict[str, Any]] = (),
        tools: Sequence[ToolDefinition] = (),
        signal: AbortSignal | None = None,
    ) -> CallHandle[Any]:
        """Run one of the agent's skills, with ``args`` (JSON data) if given."""
        state = self.state
        if name not in state.scope.skills and (
            state.discovered or state.harness.workspace_fs is None
        ):
            # Known now not to exist: refused before any operation starts.
            raise SkillNotRegisteredError(name=name, available=list(state.scope.skills))

        async def text(correlation: Correlation) -> str:
            # A workspace skill may be found (and is read) only once the operation runs.
            await state.prepare(correlation)
            skill = state.scope.skills.get(name)
            if skill is None:
                raise SkillNotRegisteredError(name=name, available=list(state.scope.skills))
            return await skill_prompt(skill, args, state.fs)

        return self._start_prompt(
            "skill", text, result, model, thinking_level, images, tools, signal
        )

    def task(
        self,
        text: str,
        *,
        agent: str | None = None,
        result: Any = None,
        model: str | None = None,
        thinking_level: ThinkingLevel | None = None,
        images: Sequence[dict[str, Any]] = (),
        tools: Sequence[ToolDefinition] = (),
        signal: AbortSignal | None = None,
        cwd: str | None = None,
    ) -> CallHandle[Any]:
        """Delegate ``text`` to a fresh child session speaking as subagent ``agent`` (or as
        this agent), working in ``cwd`` if given (relative to this session's); resolves to
        the child's :class:`PromptResponse` / :class:`PromptResultResponse`. ``tools`` go to
        the child's prompt."""
        if not isinstance(text, str):
            raise TypeError("task text must be a string")
        attached = check_images(images)
        spec = ResultSpec.of(result) if result is not None else None
        plan = plan_task(self.state, agent, model=model, thinking_level=thinking_level, cwd=cwd)

        async def body(correlation: Correlation) -> Outcome:
            return await run_task(
                self.state, plan, correlation, text, images=attached, result=spec, tools=tools
            )

        return self._start("task", body, signal)

    async def compact(self) -> None:
        """Summarize the older part of the conversation into one message, keeping the latest
        exchange; does nothing (and calls no model) when there is nothing older."""

        async def body(correlation: Correlation) -> Outcome:
            usage = await compaction.compact(self.state, correlation)
            return Outcome(value=None, usage=usage, wire_result=None)

        await self._start("compact", body)

    def _start_prompt(
        self,
        kind: str,
        text: str | Callable[[Correlation], Awaitable[str]],
        result: Any,
        model: str | None,
        thinking_level: ThinkingLevel | None,
        images: Sequence[dict[str, Any]],
        tools: Sequence[ToolDefinition],
        signal: AbortSignal | None,
    ) -> CallHandle[Any]:
        attached = check_images(images)
        spec = ResultSpec.of(result) if result is not None else None
        self.state.resolve(model)  # an unknown model fails the call, before any operation starts

        body = partial(_prompt_body, self.state, text, model, thinking_level, attached, spec, tools)
        return self._start(kind, body, signal)

    def shell(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        signal: AbortSignal | None = None,
    ) -> CallHandle[ShellResult]:
        """Run ``command`` in the sandbox as an operation of this session (``shell``); the
        exchange joins the conversation as a ``bash`` tool call and its result, so the model
        sees it on the next prompt. ``env`` values are never recorded, here or in events."""

        async def body(correlation: Correlation) -> Outcome:
            call_id = self.state.services.ids.uuid()
            result = await self.state.harness.run_shell(
                command,
                env=env,
                cwd=cwd if cwd is not None else self.state.scope.cwd,
                timeout=timeout,
                correlation=correlation,
                call_id=call_id,
            )
            self._record_shell(call_id, command, cwd, result)
            wire = {"stdout": result.stdout, "stderr": result.stderr, "exitCode": result.exit_code}
            return Outcome(value=result, usage=Usage(), wire_result=wire)

        return self._start("shell", body, signal)

    def _record_shell(
        self, call_id: str, command: str, cwd: str | None, result: ShellResult
    ) -> None:
        resolved = self.state.harness.resolve_model(None)
        arguments: dict[str, Any] = {"command": command}
        if cwd is not None:
            arguments["cwd"] = cwd
        now = self.state.services.clock.now_ms()
        conversation = self.state.conversation
        conversation.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "toolCall", "id": call_id, "name": "bash", "arguments": arguments}
                ],
                "api": resolved.provider.api,
                "provider": resolved.provider_name,
                "model": resolved.model_id,
                "usage": Usage().to_wire(),
                "stopReason": "toolUse",
                "timestamp": now,
            }
        )
        conversation.append(
            {
                "role": "toolResult",
                "toolCallId": call_id,
                "toolName": "bash",
                "content": [{"type": "text", "text": result.stdout + result.stderr}],
                "isError": result.exit_code != 0,
                "timestamp": now,
            }
        )

    def _start(
        self,
        kind: str,
        body: Callable[[Correlation], Awaitable[Outcome]],
        signal: AbortSignal | None = None,
    ) -> CallHandle[Any]:
        if self.state.active_kind is not None:
            raise SessionBusyError(name=self.name, kind=self.state.active_kind)
        # The operation starts now, as in Flue: operation_start is recorded when it is called,
        # so an operation aborted before it ever ran still opens and closes in the log.
        operation = _Operation(self.state, kind)
        task = asyncio.get_running_loop().create_task(operation.run(body))
        handle = operation.handle = CallHandle(task)
        # Aborted before its first step: run() never ran, so close the operation here.
        task.add_done_callback(operation.settled)
        self.state.harness.track(handle)
        if signal is not None:
            handle.abort_on(signal)
        return handle
