"""Sessions: one conversation, one operation at a time, every step recorded as events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..clock import Clock
from ..definitions import ToolDefinition
from ..errors import (
    AbortError,
    SessionBusyError,
    SkillNotRegisteredError,
)
from ..events import error_payload
from ..ids import IdSource
from ..jsonvalue import dumps
from ..models import (
    ResolvedModel,
    ThinkingLevel,
    Usage,
)
from ..observation import AgentExecution, context_of, intercept
from . import compaction
from .agent_loop import agent_loop
from .call import AbortSignal, CallHandle
from .framework import FrameworkTool
from .outcomes import ModelRef, Outcome, PromptResponse, PromptResultResponse
from .redaction import check_images
from .results import ResultSpec, run_with_result
from .sandbox import SandboxFs, ShellResult
from .scope import AgentScope
from .sink import EventSink
from .skills import skill_prompt, skill_tools
from .tasks import plan_task, run_task, task_tool
from .tools import ToolBox
from .workspace_context import discover

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["ModelRef", "PromptResponse", "PromptResultResponse", "Session"]

T = TypeVar("T")


class _Operation:
    """One operation's bracket in the log: ``operation_start`` when made, then exactly one
    ``operation`` and ``idle`` however it ends; ending it frees the session."""

    def __init__(self, session: Session, kind: str) -> None:
        self._session = session
        self.kind = kind
        self.id = "op_" + session._ids.ulid()
        self.correlation = {**session._correlation(), "operationId": self.id}
        self._started = session._clock.now_ms()
        self.ended = False
        session._active_kind = kind
        session._sink.emit(
            "operation_start", {"operationId": self.id, "operationKind": kind, **self.correlation}
        )

    def _end(self, fields: dict[str, Any]) -> None:
        if self.ended:
            return
        self.ended = True
        session = self._session
        session._active_kind = None
        duration = session._clock.now_ms() - self._started
        ended = {"operationId": self.id, "operationKind": self.kind, "durationMs": duration}
        session._sink.emit("operation", {**ended, **fields, **self.correlation})
        session._sink.emit("idle", session._correlation())

    def succeed(self, outcome: Outcome) -> None:
        self._end(
            {"isError": False, "result": outcome.wire_result, "usage": outcome.usage.to_wire()}
        )

    def fail(self, error: BaseException) -> None:
        self._end({"isError": True, "error": error_payload(error)})


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
        lineage: Mapping[str, str] | None = None,
    ) -> None:
        self._harness = harness
        self.name = name
        self.conversation_id = conversation_id
        self._sink = sink
        self._clock = clock
        self._ids = ids
        self._tools = tools
        # The agent this session speaks as; a task's child session brings its own.
        self._scope = scope or AgentScope.root(harness.config, tools, depth=harness.depth)
        # parentSession / taskId, carried by every event of a task's child session.
        self._lineage = dict(lineage or {})
        self._messages: list[dict[str, Any]] = []
        # Responses before this index carry usage from before the last compaction, which no
        # longer says how large the conversation is (see context_budget.context_tokens).
        self._counted_from = 0
        self._active_kind: str | None = None
        # Whether the workspace context has been read (it is, at the first prompt that finds
        # a sandbox to read it from).
        self._discovered = False

    @property
    def fs(self) -> SandboxFs:
        return self._harness.fs

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (a copy)."""
        return list(self._messages)

    def _correlation(self) -> dict[str, Any]:
        return {
            "harness": self._harness.name,
            "session": self.name,
            "conversationId": self.conversation_id,
            **self._lineage,
        }

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
        if name not in self._scope.skills and (
            self._discovered or self._harness.workspace_fs is None
        ):
            # Known now not to exist: refused before any operation starts.
            raise SkillNotRegisteredError(name=name, available=list(self._scope.skills))

        async def text(correlation: dict[str, Any]) -> str:
            # A workspace skill may be found (and is read) only once the operation runs.
            await self._prepare(correlation)
            skill = self._scope.skills.get(name)
            if skill is None:
                raise SkillNotRegisteredError(name=name, available=list(self._scope.skills))
            return await skill_prompt(skill, args, lambda: self._harness.fs)

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
        plan = plan_task(self, agent, model=model, thinking_level=thinking_level, cwd=cwd)

        async def body(correlation: dict[str, Any]) -> Outcome:
            return await run_task(
                self, plan, correlation, text, images=attached, result=spec, tools=tools
            )

        return self._start("task", body, signal)

    async def compact(self) -> None:
        """Summarize the older part of the conversation into one message, keeping the latest
        exchange; does nothing (and calls no model) when there is nothing older."""

        async def body(correlation: dict[str, Any]) -> Outcome:
            usage = await compaction.compact(self, correlation)
            return Outcome(value=None, usage=usage, wire_result=None)

        await self._start("compact", body)

    async def _prepare(self, correlation: Mapping[str, Any]) -> None:
        """Before the agent's first turn in this session: discover the workspace context (once)
        and connect the agent's MCP servers (once per run)."""
        if not self._discovered:
            fs = self._harness.workspace_fs
            if fs is not None:

                def warn(message: str) -> None:
                    self._sink.emit("log", {"level": "warn", "message": message, **correlation})

                context = await discover(fs, self._scope.cwd or fs.cwd, warn)
                self._scope = self._scope.with_workspace(context)
            self._discovered = fs is not None
        await self._scope.tools.ready()

    def _start_prompt(
        self,
        kind: str,
        text: str | Callable[[dict[str, Any]], Awaitable[str]],
        result: Any,
        model: str | None,
        thinking_level: ThinkingLevel | None,
        images: Sequence[dict[str, Any]],
        tools: Sequence[ToolDefinition],
        signal: AbortSignal | None,
    ) -> CallHandle[Any]:
        attached = check_images(images)
        spec = ResultSpec.of(result) if result is not None else None
        self._resolve(model)  # an unknown model fails the call, before any operation starts

        async def body(correlation: dict[str, Any]) -> Outcome:
            return await self._run_prompt(
                correlation,
                text if isinstance(text, str) else await text(correlation),
                model=model,
                thinking_level=thinking_level,
                images=attached,
                spec=spec,
                tools=tools,
            )

        return self._start(kind, body, signal)

    def _resolve(self, model: str | None) -> ResolvedModel:
        return self._harness.resolve_model(model or self._scope.model)

    async def _run_prompt(
        self,
        correlation: dict[str, Any],
        text: str,
        *,
        model: str | None,
        thinking_level: ThinkingLevel | None,
        images: list[dict[str, Any]],
        spec: ResultSpec | None,
        tools: Sequence[ToolDefinition] = (),
    ) -> Outcome:
        """A prompt's work, shared by prompt, skill and a task's child: one agent loop, or
        with ``spec`` the loop repeated until the model settles on a structured result."""
        resolved = self._resolve(model)
        if spec is None:
            return await agent_loop(
                self, correlation, text, resolved, thinking_level, images, call_tools=tools
            )

        async def loop(
            message: str,
            attached: list[dict[str, Any]],
            framework: Mapping[str, FrameworkTool],
            stop: Callable[[], bool],
        ) -> tuple[str, Usage]:
            outcome = await agent_loop(
                self,
                correlation,
                message,
                resolved,
                thinking_level,
                attached,
                extra=framework,
                stop=stop,
                call_tools=tools,
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

    def _spawn(self, name: str, scope: AgentScope, task_id: str) -> Session:
        """A detached child session for a task: not registered with the harness."""
        return Session(
            self._harness,
            name,
            conversation_id="conv_" + self._ids.ulid(),
            sink=self._sink,
            clock=self._clock,
            ids=self._ids,
            tools=scope.tools,
            scope=scope,
            lineage={"parentSession": self.name, "taskId": task_id},
        )

    def _framework_tools(
        self, call_tools: Sequence[ToolDefinition] = ()
    ) -> dict[str, FrameworkTool]:
        skills = skill_tools(self._scope.skills, lambda: self._harness.fs)
        return {**skills, **task_tool(self, call_tools)}

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

        async def body(correlation: dict[str, Any]) -> Outcome:
            call_id = self._ids.uuid()
            result = await self._harness.run_shell(
                command,
                env=env,
                cwd=cwd if cwd is not None else self._scope.cwd,
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
        resolved = self._harness.resolve_model(None)
        arguments: dict[str, Any] = {"command": command}
        if cwd is not None:
            arguments["cwd"] = cwd
        now = self._clock.now_ms()
        self._messages.append(
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
        self._messages.append(
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
        body: Callable[[dict[str, Any]], Awaitable[Outcome]],
        signal: AbortSignal | None = None,
    ) -> CallHandle[Any]:
        if self._active_kind is not None:
            raise SessionBusyError(name=self.name, kind=self._active_kind)
        # The operation starts now, as in Flue: operation_start is recorded when it is called,
        # so an operation aborted before it ever ran still opens and closes in the log.
        operation = _Operation(self, kind)
        handle: CallHandle[Any]

        execution = AgentExecution(operation.id, kind)
        context = context_of(self._harness.run_id, operation.correlation)

        async def run() -> Any:
            try:
                outcome = await intercept(execution, context, lambda: body(operation.correlation))
            except asyncio.CancelledError:
                operation.fail(AbortError(handle.abort_reason or "The operation was cancelled."))
                if handle.abort_reason is not None:
                    raise AbortError(handle.abort_reason) from None
                raise
            except Exception as error:
                operation.fail(error)
                raise
            operation.succeed(outcome)
            return outcome.value

        task = asyncio.get_running_loop().create_task(run())
        handle = CallHandle(task)
        # Aborted before its first step: run() never ran, so close the operation here.
        task.add_done_callback(
            lambda _: operation.fail(
                AbortError(handle.abort_reason or "The operation was aborted.")
            )
        )
        self._harness.track(handle)
        if signal is not None:
            handle.abort_on(signal)
        return handle

    # --- the agent loop ---------------------------------------------------------------------------
