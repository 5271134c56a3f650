"""The harness a workflow's action receives: sessions, the sandbox filesystem, and settlement."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from .._clock import Clock
from .._definitions import ActionDefinition, AgentConfig, ToolDefinition
from .._ids import IdSource, lane_ids
from .._mcp import MCPTools
from ..errors import SessionAlreadyExistsError, SessionNotFoundError
from ..models import ModelRegistry, ResolvedModel, RetryPolicy
from ..sandbox import Sandbox, SandboxContext, SandboxFs, ShellResult, create_sandbox
from ..sandbox._workspace import resolve_sandbox_path
from .actions import action_tool
from .call import AbortSignal, CallHandle
from .mcp_connection import MCPConnections
from .session import Session
from .shell import run_shell
from .sink import EventSink
from .tools import ToolBox
from .workspace_tools import Workspace

__all__ = ["Harness", "Sessions"]

_RESERVED_PREFIXES = {
    "task:": 'Session names beginning with "task:" are reserved for delegated tasks.',
    "action:": 'Session names beginning with "action:" are reserved for Actions.',
}


class Sessions:
    """``harness.sessions``: strict lookups, where ``harness.session()`` is get-or-create."""

    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    async def get(self, name: str = "default") -> Session:
        session = self._harness._sessions.get(name)
        if session is None:
            raise SessionNotFoundError(name=name)
        return session

    async def create(self, name: str = "default") -> Session:
        if name in self._harness._sessions:
            raise SessionAlreadyExistsError(name=name)
        return self._harness._open(name)


class _SandboxSlot:
    """Where a run's sandbox is made and kept. The built-in sandboxes are made on first use:
    most runs never touch a file, and an in-memory tree per run was a third of a fake-model
    run's cost. A user's factory is called at once, so what it does (and any error it raises)
    happens at the run's start."""

    __slots__ = ("_config", "_run_id", "made")

    def __init__(self, config: AgentConfig, run_id: str, sandbox: Sandbox | None) -> None:
        self._config = config
        self._run_id = run_id
        self.made = sandbox
        if sandbox is None and config.sandbox not in ("virtual", "local"):
            self.made = self._make()

    def get(self) -> Sandbox:
        if self.made is None:
            self.made = self._make()
        return self.made

    @property
    def cwd(self) -> str:
        """The sandbox's working directory, known before the sandbox is made."""
        return resolve_sandbox_path(self._config.cwd or "/workspace", "/")

    def _make(self) -> Sandbox:
        context = SandboxContext(id=self._run_id, cwd=self._config.cwd or "/workspace")
        return create_sandbox(self._config.sandbox, context)


class Harness:
    """One run's agent harness. Its conversations are private to the run."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        models: ModelRegistry,
        sink: EventSink,
        clock: Clock,
        ids: IdSource,
        name: str = "default",
        retry: RetryPolicy | None = None,
        run_id: str = "",
        sandbox: Sandbox | None = None,
        depth: int = 0,
        mcp: MCPConnections | None = None,
    ) -> None:
        self.name = name
        # How deep in delegation this scope's sessions are: 0 for the run's harness, one more
        # than the calling session's for an action run as a tool.
        self.depth = depth
        # How sessions retry transient model errors (and sleep between tries): the registry's
        # policy unless given, so a test kit's registry brings its no-wait sleep along.
        self.retry = retry or models.retry
        self.config = config
        self._models = models
        self._sink = sink
        self._clock = clock
        self._ids = ids
        self._default_model = models.resolve(config.model)
        self._run_id = run_id
        # A child scope (an action run as a tool) shares its parent's sandbox and leaves it open.
        self._owns_sandbox = sandbox is None
        self._sandbox_slot = _SandboxSlot(config, run_id, sandbox)
        # The run's MCP connections, likewise shared with child scopes and closed by the root.
        self._owns_mcp = mcp is None
        self.mcp = mcp or MCPConnections()
        # Where the built-in tools work, for every session of the run, a task's child included.
        # It asks the slot, not this harness, for the sandbox: no reference cycle through it,
        # so a finished run is freed at once rather than by the cycle collector.
        self.workspace = Workspace(self._sandbox_slot.get)
        self._tools = self.tool_box(config.tools, config.actions, depth=depth)
        self._sessions: dict[str, Session] = {}
        self._in_flight: set[CallHandle[Any]] = set()

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def sessions(self) -> Sessions:
        """Strict lookups of this harness's sessions."""
        return Sessions(self)

    @property
    def sandbox(self) -> Sandbox:
        """The run's sandbox, made on first use."""
        return self._sandbox_slot.get()

    @property
    def workspace_fs(self) -> SandboxFs | None:
        """The sandbox's files if there can be any: a built-in sandbox starts empty, so until
        something makes it there is nothing to discover (and it is not made just to look)."""
        if self._sandbox_slot.made is None and self.config.sandbox in ("virtual", "local"):
            return None
        return self.sandbox.fs

    @property
    def sink(self) -> EventSink:
        return self._sink

    @property
    def fs(self) -> SandboxFs:
        """The sandbox's files (not recorded in the run's events)."""
        return self.sandbox.fs

    def shell(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        signal: AbortSignal | None = None,
    ) -> CallHandle[ShellResult]:
        """Run ``command`` in the sandbox, outside any session: recorded as a ``bash`` tool
        call (``tool_start``/``tool``), not as an operation nor in any conversation.
        ``timeout`` is in seconds; ``env`` values are never recorded; ``signal`` aborts it."""
        task = asyncio.get_running_loop().create_task(
            self.run_shell(command, env=env, cwd=cwd, timeout=timeout, correlation={})
        )
        handle = CallHandle(task)
        self.track(handle)
        if signal is not None:
            handle.abort_on(signal)
        return handle

    async def run_shell(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None,
        cwd: str | None,
        timeout: float | None,
        correlation: Mapping[str, Any],
        call_id: str | None = None,
    ) -> ShellResult:
        return await run_shell(
            self.sandbox,
            command,
            call_id=call_id or self._ids.uuid(),
            correlation={"harness": self.name, **correlation},
            sink=self._sink,
            clock=self._clock,
            env=env,
            cwd=cwd,
            timeout=timeout,
        )

    def tool_box(
        self,
        tools: Sequence[ToolDefinition | MCPTools],
        actions: Sequence[ActionDefinition[Any, Any]],
        *,
        depth: int,
        cwd: str | None = None,
    ) -> ToolBox:
        """The model tools of sessions at delegation ``depth``: the built-in workspace tools
        (working in ``cwd``, an absolute path, if given), ``tools``, and ``actions`` as tools
        (a name used twice is refused here)."""
        offered = [action_tool(self, action, depth=depth) for action in actions]
        workspace = self.workspace if cwd is None else Workspace(self._sandbox_slot.get, cwd)
        return ToolBox(
            [*tools, *offered] if offered else tools,
            workspace=workspace,
            sink=self._sink,
            clock=self._clock,
            run_id=self._run_id,
            mcp=self.mcp,
        )

    def working_directory(self, cwd: str, base: str | None) -> str:
        """``cwd`` as an absolute sandbox path, relative to ``base`` (or the sandbox's)."""
        return resolve_sandbox_path(cwd, base or self._sandbox_slot.cwd)

    def resolve_model(self, model: str | None) -> ResolvedModel:
        return self._default_model if model is None else self._models.resolve(model)

    async def session(self, name: str = "default") -> Session:
        """The session called ``name``, created on first use."""
        return self._sessions.get(name) or self._open(name)

    def _open(self, name: str) -> Session:
        if not isinstance(name, str) or not name:
            raise ValueError("Session names must be non-empty strings.")
        for prefix, message in _RESERVED_PREFIXES.items():
            if name.startswith(prefix):
                raise ValueError(message)
        # Each session draws from its own ids, so concurrent sessions draw the same ones in a
        # replay as in the life it repeats.
        ids = lane_ids(self._ids, f"{self.name}/{name}")
        session = Session(
            self,
            name,
            conversation_id="conv_" + ids.ulid(),
            sink=self._sink,
            clock=self._clock,
            ids=ids,
            tools=self._tools,
        )
        self._sessions[name] = session
        return session

    def track(self, handle: CallHandle[Any]) -> None:
        self._in_flight.add(handle)

    def abort(self, reason: str) -> list[CallHandle[Any]]:
        """Abort every operation still running; returns them, to await their settlement."""
        pending = [handle for handle in self._in_flight if not handle.done]
        for handle in pending:
            handle.abort(reason)
        return pending

    async def close(self, reason: str = "The run ended.") -> None:
        """Abort every operation still running and wait until each has settled, so nothing the
        run started can emit after the run's end."""
        pending = self.abort(reason)
        if pending:
            await asyncio.gather(*(handle.settle() for handle in pending))
        self._in_flight.clear()
        # Each session refers back to this harness; with the run over, nothing may use them
        # (the run's stream is ended), and dropping them frees the run's objects now instead
        # of in the cycle collector, which had become a large share of a run's CPU.
        self._sessions.clear()
        # Only now, with nothing left running in it, is the sandbox released.
        if self._owns_mcp:
            await self.mcp.close()
        made = self._sandbox_slot.made
        if self._owns_sandbox and made is not None:
            await made.close()

    def child(self, name: str, *, depth: int) -> Harness:
        """An isolated scope of this run (its own sessions, at delegation ``depth``) on the
        same sandbox and agent."""
        return Harness(
            config=self.config,
            models=self._models,
            sink=self._sink,
            clock=self._clock,
            ids=self._ids,
            name=name,
            retry=self.retry,
            run_id=self._run_id,
            sandbox=self.sandbox,
            depth=depth,
            mcp=self.mcp,
        )

    def new_invocation_id(self) -> str:
        return self._ids.uuid()
