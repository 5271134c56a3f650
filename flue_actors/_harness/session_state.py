"""A session's state, as the agent loop, compaction and tasks work on it.

:class:`~flue_actors._harness.session.Session` is the public face (operations and their
bracketing in the log); everything the functions behind it read and change is here, named:
the conversation, the agent the session speaks as (model, tools, settings), and the services
it records with (sink, clock, ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, overload

from .._clock import Clock
from .._definitions import ToolDefinition
from .._ids import IdSource, lane_ids
from .._messages import Message
from ..models import ResolvedModel, RetryPolicy
from ..sandbox import SandboxFs
from .framework import FrameworkTool
from .payloads import (
    AgentEndPayload,
    CompactionPayload,
    CompactionStartPayload,
    Correlation,
    Lineage,
    LogPayload,
    MessagePayload,
    OperationPayload,
    OperationStartPayload,
    TaskPayload,
    TaskStartPayload,
    TextDeltaPayload,
    ThinkingDeltaPayload,
    ThinkingEndPayload,
    ThinkingStartPayload,
    TurnMessagesPayload,
    TurnPayload,
    TurnRequestPayload,
    TurnStartPayload,
)
from .scope import AgentScope
from .sink import EventSink
from .skills import skill_tools
from .tasks import task_tool
from .workspace_context import discover

if TYPE_CHECKING:
    from .harness import Harness

__all__ = ["Conversation", "Services", "SessionState"]


@dataclass(frozen=True)
class Services:
    """Where a session records (``sink``), what time it is (``clock``) and where its ids
    come from (``ids``)."""

    sink: EventSink
    clock: Clock
    ids: IdSource

    @overload
    def emit(self, type: Literal["operation_start"], payload: OperationStartPayload) -> None: ...
    @overload
    def emit(self, type: Literal["operation"], payload: OperationPayload) -> None: ...
    @overload
    def emit(self, type: Literal["idle"], payload: Correlation) -> None: ...
    @overload
    def emit(self, type: Literal["agent_start"], payload: Correlation) -> None: ...
    @overload
    def emit(self, type: Literal["agent_end"], payload: AgentEndPayload) -> None: ...
    @overload
    def emit(self, type: Literal["turn_start"], payload: TurnStartPayload) -> None: ...
    @overload
    def emit(
        self, type: Literal["message_start", "message_end"], payload: MessagePayload
    ) -> None: ...
    @overload
    def emit(self, type: Literal["text_delta"], payload: TextDeltaPayload) -> None: ...
    @overload
    def emit(self, type: Literal["thinking_start"], payload: ThinkingStartPayload) -> None: ...
    @overload
    def emit(self, type: Literal["thinking_delta"], payload: ThinkingDeltaPayload) -> None: ...
    @overload
    def emit(self, type: Literal["thinking_end"], payload: ThinkingEndPayload) -> None: ...
    @overload
    def emit(self, type: Literal["turn"], payload: TurnPayload) -> None: ...
    @overload
    def emit(self, type: Literal["turn_messages"], payload: TurnMessagesPayload) -> None: ...
    @overload
    def emit(self, type: Literal["log"], payload: LogPayload) -> None: ...
    @overload
    def emit(self, type: Literal["compaction_start"], payload: CompactionStartPayload) -> None: ...
    @overload
    def emit(self, type: Literal["compaction"], payload: CompactionPayload) -> None: ...
    @overload
    def emit(self, type: Literal["task_start"], payload: TaskStartPayload) -> None: ...
    @overload
    def emit(self, type: Literal["task"], payload: TaskPayload) -> None: ...

    def emit(self, type: str, payload: Any) -> None:
        """Record an event: ``payload`` is the one its ``type`` defines (see payloads)."""
        self.sink.emit(type, payload)

    def announce(self, type: Literal["turn_request"], payload: TurnRequestPayload) -> None:
        """Tell live observers only (the event is never recorded)."""
        self.sink.announce(type, {**payload})


@dataclass
class Conversation:
    """The messages of a session, in order, as the model is sent them."""

    messages: list[Message] = field(default_factory=list)
    # Responses before this index carry usage from before the last compaction, which no
    # longer says how large the conversation is (see context_budget.context_tokens).
    counted_from: int = 0

    def append(self, message: Message) -> None:
        self.messages.append(message)

    def snapshot(self) -> list[Message]:
        """The messages as they are now (a copy: a request keeps what it was sent)."""
        return list(self.messages)

    def rewrite(self, messages: list[Message]) -> None:
        """Replace the messages with a compacted version of them: none of the usage recorded
        before describes the conversation any longer."""
        self.messages[:] = messages
        self.counted_from = len(self.messages)


class SessionState:
    """One session's conversation, the agent it speaks as, and its services."""

    def __init__(
        self,
        harness: Harness,
        name: str,
        *,
        conversation_id: str,
        services: Services,
        scope: AgentScope,
        lineage: Lineage | None = None,
    ) -> None:
        self.harness = harness
        self.name = name
        self.conversation_id = conversation_id
        self.services = services
        # The agent this session speaks as (instructions, model, tools, skills, subagents,
        # settings); a task's child session brings its own.
        self.scope = scope
        # parentSession / taskId, carried by every event of a task's child session.
        self.lineage: Lineage = {**lineage} if lineage else {}
        self.conversation = Conversation()
        # The kind of the operation running now (a session runs one at a time), else None.
        self.active_kind: str | None = None
        # Whether the workspace context has been read (it is, at the first prompt that finds
        # a sandbox to read it from).
        self.discovered = False

    @property
    def retry(self) -> RetryPolicy:
        return self.harness.retry

    @property
    def run_id(self) -> str:
        return self.harness.run_id

    def fs(self) -> SandboxFs:
        return self.harness.fs

    def correlation(self) -> Correlation:
        """The fields that say, in every event of this session, whose event it is."""
        correlation: Correlation = {
            "harness": self.harness.name,
            "session": self.name,
            "conversationId": self.conversation_id,
        }
        lineage = self.lineage
        if "parentSession" in lineage:
            correlation["parentSession"] = lineage["parentSession"]
        if "taskId" in lineage:
            correlation["taskId"] = lineage["taskId"]
        return correlation

    def resolve(self, model: str | None) -> ResolvedModel:
        """``model``, else the agent's model, else the harness's default."""
        return self.harness.resolve_model(model or self.scope.model)

    async def prepare(self, correlation: Correlation) -> None:
        """Before the agent's first turn in this session: discover the workspace context (once)
        and connect the agent's MCP servers (once per run)."""
        if not self.discovered:
            fs = self.harness.workspace_fs
            if fs is not None:

                def warn(message: str) -> None:
                    self.services.emit("log", {"level": "warn", "message": message, **correlation})

                context = await discover(fs, self.scope.cwd or fs.cwd, warn)
                self.scope = self.scope.with_workspace(context)
            self.discovered = fs is not None
        await self.scope.tools.ready()

    def framework_tools(
        self, call_tools: Sequence[ToolDefinition] = ()
    ) -> dict[str, FrameworkTool]:
        """The tools the harness itself offers this session's model: skills and tasks."""
        skills = skill_tools(self.scope.skills, self.fs)
        return {**skills, **task_tool(self, call_tools)}

    def spawn(self, name: str, scope: AgentScope, task_id: str) -> SessionState:
        """A detached child session for a task: not registered with the harness. It draws
        from ids of its own, as every session does (see ``ids.lane_ids``)."""
        ids = lane_ids(self.services.ids, f"{self.harness.name}/{name}")
        return SessionState(
            self.harness,
            name,
            conversation_id="conv_" + ids.ulid(),
            services=replace(self.services, ids=ids),
            scope=scope,
            lineage={"parentSession": self.name, "taskId": task_id},
        )
