"""Every error flue_actors raises on purpose.

Each class owns its wire ``type`` string (Flue's vocabulary) and, for errors that reach HTTP, its
status. Constructors take structured data and build the caller-safe ``message`` and ``details``
themselves, so call sites never invent phrasing. ``dev`` carries developer-only hints (alternatives,
file paths) and is rendered only in local mode.

Every error belongs to one family, so a caller can handle a kind of failure with one ``except``::

    FlueError
    ├── FlueDefinitionError       a definition or workflow module cannot be used
    │   ├── DefinitionError (also a TypeError)   definition_invalid
    │   ├── SkillDefinitionValidationError (a DefinitionError)   skill_definition_validation
    │   ├── WorkflowLoadError                    workflow_load_failed
    │   ├── WorkflowNotDiscoveredError           workflow_not_discovered
    │   └── ToolNameConflictError                tool_name_conflict
    ├── FlueInputError            what the caller handed over cannot be accepted
    │   ├── InvalidJsonError                     invalid_json (400)
    │   ├── InvalidRequestError                  invalid_request (400)
    │   ├── WorkflowNotFoundError                workflow_not_found (404)
    │   ├── WorkflowInputUnexpectedError         workflow_input_unexpected
    │   ├── WorkflowInputSerializationError      workflow_input_serialization
    │   ├── ActionInputValidationError           action_input_validation
    │   ├── IdempotencyKeyConflictError          idempotency_key_conflict (409)
    │   ├── IdempotencyKeyInvalidError           idempotency_key_invalid (400)
    │   └── BatchInputError                      batch_input_invalid (400)
    ├── FlueRunError              a run cannot be admitted, found or finished as asked
    │   ├── WorkflowAdmissionFailedError         workflow_admission_failed
    │   ├── RunNotFoundError                     run_not_found (404)
    │   ├── RunNotActiveError                    run_not_active (409)
    │   ├── RunCancelledError                    run_cancelled
    │   ├── RunInterruptedError                  run_interrupted
    │   ├── ReplayDivergenceError                replay_divergence
    │   ├── WorkflowInvocationNotConfiguredError workflow_invocation_not_configured
    │   ├── HostDrainingError (runtime.ray)      host_draining
    │   └── RayClusterUnavailableError (runtime.ray)   ray_cluster_unavailable
    ├── FlueHarnessError          an operation inside a run failed
    │   ├── ActionOutputValidationError          action_output_validation
    │   ├── ActionOutputSerializationError       action_output_serialization
    │   ├── SessionNotFoundError                 session_not_found
    │   ├── SessionAlreadyExistsError            session_already_exists
    │   ├── SessionBusyError                     session_busy
    │   ├── OperationFailedError                 operation_failed
    │   ├── SkillNotRegisteredError              skill_not_registered
    │   ├── SubagentNotDeclaredError             subagent_not_declared
    │   ├── DelegationDepthExceededError         delegation_depth_exceeded
    │   ├── ToolInputValidationError             tool_input_validation
    │   ├── ToolOutputValidationError            tool_output_validation
    │   ├── ToolOutputSerializationError         tool_output_serialization
    │   ├── MCPConnectionError                   mcp_connection_failed
    │   └── SandboxPathError (also a ValueError) sandbox_path_invalid
    ├── FlueModelError            a model cannot be resolved or its provider failed
    │   ├── ModelNotResolvedError                model_not_resolved
    │   └── ModelRequestError                    model_request_failed
    ├── FlueStoreError            the event log refused a read or write
    │   ├── StreamMissingError                   stream_not_found
    │   ├── StreamClosedError                    stream_closed
    │   ├── StreamConflictError                  stream_conflict
    │   ├── EventNotStorableError                event_not_storable
    │   ├── ProductEventVersionError             product_event_version_unsupported
    │   ├── StoreSchemaVersionError              persisted_schema_version_unsupported
    │   └── RunStoreUnavailableError             run_store_unavailable (503)
    │       └── StoreConnectionError (store.postgres; also a ConnectionError)
    └── FlueHttpError             the HTTP layer's own (flue_actors.gateway._errors)
        ├── MethodNotAllowedError                method_not_allowed (405)
        ├── UnsupportedMediaTypeError            unsupported_media_type (415)
        ├── PayloadTooLargeError                 payload_too_large (413)
        ├── RouteNotFoundError                   route_not_found (404)
        ├── ServerShuttingDownError              runtime_unavailable (503)
        └── InternalError                        internal_error (500)

Outside the hierarchy, as in Flue: :class:`AbortError` (cancellation is not a failure) and
:class:`ResultUnavailableError` (the model declined to answer in shape). Errors without an HTTP
status answer 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from . import _lazy

if TYPE_CHECKING:
    from .gateway._errors import (
        InternalError,
        MethodNotAllowedError,
        PayloadTooLargeError,
        RouteNotFoundError,
        ServerShuttingDownError,
        UnsupportedMediaTypeError,
    )

__all__ = [
    "AbortError",
    "ActionInputValidationError",
    "ActionOutputSerializationError",
    "ActionOutputValidationError",
    "BatchInputError",
    "DefinitionError",
    "DelegationDepthExceededError",
    "EventNotStorableError",
    "FlueDefinitionError",
    "FlueError",
    "FlueHarnessError",
    "FlueHttpError",
    "FlueInputError",
    "FlueModelError",
    "FlueRunError",
    "FlueStoreError",
    "IdempotencyKeyConflictError",
    "IdempotencyKeyInvalidError",
    "InternalError",
    "InvalidJsonError",
    "InvalidRequestError",
    "MCPConnectionError",
    "MethodNotAllowedError",
    "ModelNotResolvedError",
    "ModelRequestError",
    "OperationFailedError",
    "PayloadTooLargeError",
    "ProductEventVersionError",
    "ReplayDivergenceError",
    "ResultUnavailableError",
    "RouteNotFoundError",
    "RunCancelledError",
    "RunInterruptedError",
    "RunNotActiveError",
    "RunNotFoundError",
    "RunStoreUnavailableError",
    "SandboxPathError",
    "ServerShuttingDownError",
    "SessionAlreadyExistsError",
    "SessionBusyError",
    "SessionNotFoundError",
    "SkillDefinitionValidationError",
    "SkillNotRegisteredError",
    "StoreSchemaVersionError",
    "StreamClosedError",
    "StreamConflictError",
    "StreamMissingError",
    "SubagentNotDeclaredError",
    "ToolInputValidationError",
    "ToolNameConflictError",
    "ToolOutputSerializationError",
    "ToolOutputValidationError",
    "UnsupportedMediaTypeError",
    "WorkflowAdmissionFailedError",
    "WorkflowInputSerializationError",
    "WorkflowInputUnexpectedError",
    "WorkflowInvocationNotConfiguredError",
    "WorkflowLoadError",
    "WorkflowNotDiscoveredError",
    "WorkflowNotFoundError",
]


# The HTTP layer's own errors live with the gateway (which imports FastAPI): loaded on first use.
__getattr__ = _lazy.lazy_exports(
    __name__,
    {
        "..gateway._errors": [
            "InternalError",
            "MethodNotAllowedError",
            "PayloadTooLargeError",
            "RouteNotFoundError",
            "ServerShuttingDownError",
            "UnsupportedMediaTypeError",
        ]
    },
)


def _quoted_list(items: Sequence[str]) -> str:
    return ", ".join(f'"{item}"' for item in items) if items else "(none)"


class FlueError(Exception):
    """Base of every typed error. ``type`` is the stable wire identifier."""

    type: ClassVar[str] = "flue_error"
    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        details: str = "",
        dev: str = "",
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.dev = dev
        self.meta: dict[str, Any] | None = dict(meta) if meta is not None else None

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP response headers this error implies (``Allow`` for 405, ...)."""
        return {}

    def envelope(self, *, include_dev: bool = False) -> dict[str, Any]:
        """The wire envelope ``{"error": {type, message, details, dev?, meta?}}``."""
        body: dict[str, Any] = {"type": self.type, "message": self.message, "details": self.details}
        if include_dev and self.dev:
            body["dev"] = self.dev
        if self.meta is not None:
            body["meta"] = self.meta
        return {"error": body}


# --- Families: catch one of these to handle every error of its kind -----------------------------


class FlueDefinitionError(FlueError):
    """A workflow, agent, tool or action definition (or the module holding it) cannot be used."""


class FlueInputError(FlueError):
    """What a caller handed over (a workflow name, input, a request) cannot be accepted."""


class FlueRunError(FlueError):
    """A run could not be admitted, found, or finished as asked (cancelled, interrupted)."""


class FlueHarnessError(FlueError):
    """An operation inside a run (a session, skill, task, action or sandbox call) failed."""


class FlueModelError(FlueError):
    """A model could not be resolved or a call to its provider failed."""


class FlueStoreError(FlueError):
    """The event log refused a read or write, or holds data this version cannot read."""


class FlueHttpError(FlueError):
    """An error that belongs to the HTTP layer and carries its own status. Its members live with
    the gateway (:mod:`flue_actors.gateway._errors`) and are re-exported here."""

    status: ClassVar[int] = 400


# --- Requests: input and lookups ------------------------------------------------------------------


class InvalidJsonError(FlueInputError):
    type = "invalid_json"
    status = 400

    def __init__(self, *, parse_error: str, subject: str | None = None) -> None:
        guidance = (
            "Verify the body is well-formed JSON, or omit the body entirely if the request "
            "doesn't have a payload."
            if subject is None
            else f"Verify {subject} is well-formed JSON, or omit it if there is no input."
        )
        super().__init__(
            f"{subject or 'Request body'} is not valid JSON.",
            details=f"The JSON parser reported: {parse_error}\n{guidance}",
        )


class InvalidRequestError(FlueInputError):
    type = "invalid_request"
    status = 400

    def __init__(self, *, reason: str) -> None:
        super().__init__("Request is malformed.", details=reason)


class WorkflowNotFoundError(FlueInputError):
    type = "workflow_not_found"
    status = 404

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        self.name = name
        super().__init__(
            f'Workflow "{name}" is not registered.',
            details="Verify the workflow name is correct.",
            dev=f"Available workflows: {_quoted_list(available)}.",
        )


class RunNotFoundError(FlueRunError):
    type = "run_not_found"
    status = 404

    def __init__(self, *, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f'Run "{run_id}" was not found.',
            details="Verify the run id is correct and its history is still available.",
        )


class RunNotActiveError(FlueRunError):
    """Beyond Flue: cancelling a run that has already ended."""

    type = "run_not_active"
    status = 409

    def __init__(self, *, run_id: str) -> None:
        super().__init__(
            f'Run "{run_id}" is not active.',
            details="The run has already ended; only active runs can be cancelled.",
        )


class RunStoreUnavailableError(FlueStoreError):
    """The run store cannot be reached (a PostgreSQL server that is down or unreachable).

    Flue's type, with 503 and ``Retry-After`` instead of Flue's 501: Flue means a runtime built
    without a store, which cannot happen here, so the one way to lack run history is an outage.
    The message is Flue's; why the store is unreachable is in ``dev`` (never in the envelope
    outside dev mode) and in ``str(error)``.
    """

    type = "run_store_unavailable"
    status = 503

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            "Run history is not available in this runtime.",
            details="The run store cannot be reached; retry shortly.",
            dev=reason,
        )
        if reason:
            self.args = (reason,)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


# --- Definitions and discovery ----------------------------------------------------------------


class DefinitionError(FlueDefinitionError, TypeError):
    """A ``define_*`` call was given something it cannot accept. Raised at import time."""

    type = "definition_invalid"


class SkillDefinitionValidationError(DefinitionError):
    """A ``SKILL.md`` (or its folder) is not a valid Agent Skills skill: missing or malformed
    front matter, a name that breaks the spec or differs from its folder, a secret in the
    folder. ``load_skill`` raises it; a workspace skill like that is skipped with a warning."""

    type = "skill_definition_validation"

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"[flue] Skill {path} {reason}", meta={"path": path})


class WorkflowLoadError(FlueDefinitionError):
    """A workflow module could not be imported or does not define a workflow."""

    type = "workflow_load_failed"

    def __init__(self, *, name: str, reason: str, path: str = "") -> None:
        self.name = name
        super().__init__(
            f'Workflow "{name}" could not be loaded: {reason}',
            details="The workflow module failed to load.",
            dev=f"Module path: {path}" if path else "",
        )


class WorkflowInvocationNotConfiguredError(FlueRunError):
    """Ambient ``invoke()`` with no runtime to admit the run: called outside a run, in a
    process with no runtime open."""

    type = "workflow_invocation_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "Workflow invocation is not configured in this runtime.",
            dev="Call invoke() inside a run, or while a Runtime is open in this process "
            "(runtime.serve(), or async with Runtime(...)).",
        )


class WorkflowNotDiscoveredError(FlueDefinitionError):
    type = "workflow_not_discovered"

    def __init__(self, *, name: str | None = None) -> None:
        subject = f'Workflow "{name}"' if name else "The workflow"
        super().__init__(
            f"{subject} is not one of this runtime's discovered workflows.",
            details="Pass a workflow definition that the runtime was created with.",
        )


# --- Input, output, admission ---------------------------------------------------------------------


class WorkflowInputUnexpectedError(FlueInputError):
    type = "workflow_input_unexpected"

    def __init__(self, *, workflow: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" does not accept input.',
            details="Omit the input: this workflow declares no input schema.",
            meta={"workflow": workflow},
        )


class WorkflowInputSerializationError(FlueInputError):
    type = "workflow_input_serialization"

    def __init__(self, *, workflow: str, reason: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" input is not JSON-serializable: {reason}',
            details="Workflow input must be plain JSON data.",
            meta={"workflow": workflow},
        )


class WorkflowAdmissionFailedError(FlueRunError):
    type = "workflow_admission_failed"

    def __init__(self, *, workflow: str, reason: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" could not be admitted: {reason}',
            meta={"workflow": workflow},
        )


class IdempotencyKeyConflictError(FlueInputError):
    """An idempotency key already admitted a run of this workflow with other input."""

    type = "idempotency_key_conflict"
    status = 409

    def __init__(self, *, workflow: str, key: str, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f'Idempotency key "{key}" of workflow "{workflow}" was used with a different input.',
            details=f'The key belongs to run "{run_id}"; a new input needs a new key.',
            meta={"workflow": workflow, "idempotencyKey": key, "runId": run_id},
        )


class IdempotencyKeyInvalidError(FlueInputError):
    type = "idempotency_key_invalid"
    status = 400

    def __init__(self, *, reason: str) -> None:
        super().__init__(
            f"Invalid idempotency key: {reason}",
            details="A key is 1 to 255 printable ASCII characters.",
        )


class BatchInputError(FlueInputError):
    """A batch's input or output file cannot be used as it is (the batch did not start)."""

    type = "batch_input_invalid"
    status = 400

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message, details=details)


def _issue_list(issues: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for issue in issues[:10]:
        path = ".".join(str(p) for p in issue.get("path", ()))
        lines.append(f"- {path}: {issue['message']}" if path else f"- {issue['message']}")
    return "\n".join(lines)


class ActionInputValidationError(FlueInputError):
    type = "action_input_validation"

    def __init__(self, *, action: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Action "{action}" input does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"action": action, "issues": self.issues},
        )


class ActionOutputValidationError(FlueHarnessError):
    type = "action_output_validation"

    def __init__(self, *, action: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Action "{action}" output does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"action": action, "issues": self.issues},
        )


class ActionOutputSerializationError(FlueHarnessError):
    type = "action_output_serialization"

    def __init__(self, *, action: str, reason: str) -> None:
        super().__init__(
            f'Action "{action}" output is not JSON-serializable: {reason}',
            details="Action results must be plain JSON data.",
            meta={"action": action},
        )


# --- Harness ------------------------------------------------------------------------------------


class SessionNotFoundError(FlueHarnessError):
    type = "session_not_found"

    def __init__(self, *, name: str) -> None:
        super().__init__(f'Session "{name}" does not exist.')


class SessionAlreadyExistsError(FlueHarnessError):
    type = "session_already_exists"

    def __init__(self, *, name: str) -> None:
        super().__init__(f'Session "{name}" already exists.')


class SessionBusyError(FlueHarnessError):
    type = "session_busy"

    def __init__(self, *, name: str, kind: str) -> None:
        super().__init__(
            f'Session "{name}" is busy running {kind}.',
            details="Await the running operation, or use a separately named session in parallel.",
        )


class OperationFailedError(FlueHarnessError):
    type = "operation_failed"

    def __init__(self, *, kind: str, reason: str) -> None:
        super().__init__(f"{kind} failed: {reason}")


class SkillNotRegisteredError(FlueHarnessError):
    type = "skill_not_registered"

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        super().__init__(
            f'Skill "{name}" is not registered.',
            details="Register it in the agent's skills, or use a registered skill name.",
            dev=f"Registered skills: {_quoted_list(list(available))}.",
        )


class SubagentNotDeclaredError(FlueHarnessError):
    type = "subagent_not_declared"

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        super().__init__(
            f'Subagent "{name}" is not declared.',
            details="Declare it in the agent's subagents, or omit agent to reuse this agent.",
            dev=f"Declared subagents: {_quoted_list(list(available))}.",
        )


class DelegationDepthExceededError(FlueHarnessError):
    type = "delegation_depth_exceeded"

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            f"Delegation depth limit of {limit} exceeded.",
            details="Tasks may nest at most this deep; do the work in this session instead.",
        )


class ToolInputValidationError(FlueHarnessError):
    """A model called a tool with arguments that fail its ``input`` model. The message is
    addressed to the model, which gets it as the tool's error result and may call again."""

    type = "tool_input_validation"

    def __init__(self, *, tool: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        summary = "; ".join(
            f"{issue['message']} (at {'.'.join(str(p) for p in issue['path'])})"
            if issue.get("path")
            else str(issue["message"])
            for issue in self.issues
        )
        super().__init__(
            f'Arguments for tool "{tool}" do not match the required schema: {summary}. '
            "Call the tool again with corrected arguments.",
            meta={"tool": tool, "issues": self.issues},
        )


class ToolOutputValidationError(FlueHarnessError):
    type = "tool_output_validation"

    def __init__(self, *, tool: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Tool "{tool}" output does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"tool": tool, "issues": self.issues},
        )


class ToolOutputSerializationError(FlueHarnessError):
    type = "tool_output_serialization"

    def __init__(self, *, tool: str, reason: str) -> None:
        super().__init__(
            f'Tool "{tool}" output is not JSON-serializable: {reason}',
            dev="Return JSON data (or a pydantic model) from the tool's run function.",
            meta={"tool": tool},
        )


class ToolNameConflictError(FlueDefinitionError):
    """Two model tools of one agent share a name (a built-in workspace tool and a
    ``define_tool`` tool, say), or a tool takes a name the framework reserves: the model could
    not tell them apart."""

    type = "tool_name_conflict"

    def __init__(self, *, name: str, reason: str | None = None) -> None:
        what = f"conflicts with {reason}" if reason else "is used by more than one tool"
        super().__init__(f'Tool name "{name}" {what}.')


class MCPConnectionError(FlueHarnessError):
    """An agent's MCP server could not be started or reached, or did not list its tools (or
    the ones ``mcp_tools(tools=...)`` names). Flue has no type of its own for this."""

    type = "mcp_connection_failed"

    def __init__(self, *, server: str, transport: str, target: str, reason: str) -> None:
        super().__init__(
            f'MCP server "{server}" ({transport}) could not be connected: {reason}',
            meta={"server": server, "transport": transport, "target": target},
        )


class ResultUnavailableError(Exception):
    """The agent produced no structured result: it called ``give_up`` or never called ``finish``.

    Not a :class:`FlueError`, as in Flue: the request was fine, the model declined or failed to
    answer in the requested shape. ``reason`` is the model's (or the ceiling's) explanation and
    ``assistant_text`` the text of the last assistant turn.
    """

    def __init__(
        self, reason: str, assistant_text: str = "", *, message: str | None = None
    ) -> None:
        self.reason = reason
        self.assistant_text = assistant_text
        super().__init__(message if message is not None else f"The agent gave up: {reason}")


class SandboxPathError(FlueHarnessError, ValueError):
    type = "sandbox_path_invalid"

    def __init__(self, *, path: str) -> None:
        super().__init__(f'Path "{path}" is outside the sandbox.')


class AbortError(Exception):
    """An operation was aborted (``CallHandle.abort()``, run cancellation, harness close).

    Deliberately not a :class:`FlueError`, as in Flue: cancellation is not a failure of the
    request. ``reason`` is what the aborter said, if anything.
    """

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "The operation was aborted.")


class ModelNotResolvedError(FlueModelError):
    type = "model_not_resolved"

    def __init__(self, *, model: str, reason: str) -> None:
        super().__init__(f'model "{model}" could not be resolved: {reason}')


class ModelRequestError(FlueModelError):
    """A model provider call failed. ``transient`` errors are worth retrying (the harness does,
    see :class:`~flue_actors.models.RetryPolicy`); ``retry_after`` is the provider's own hint in
    seconds (a 429's ``retry-after`` header), and ``code`` names the failure when it matters to
    the caller (``"context_overflow"``, ``"rate_limited"``, ``"overloaded"``, ...)."""

    type = "model_request_failed"

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.transient = transient
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class RunCancelledError(FlueRunError):
    type = "run_cancelled"

    def __init__(self, *, run_id: str, reason: str = "The run was cancelled.") -> None:
        super().__init__(reason, meta={"runId": run_id})


class RunInterruptedError(FlueRunError):
    """The run's owner died; recovery ended the run (as Flue's Cloudflare target does)."""

    type = "run_interrupted"

    def __init__(self) -> None:
        super().__init__(
            "Flue workflow execution was interrupted. Start a new workflow run explicitly if "
            "retry is appropriate."
        )


class ReplayDivergenceError(FlueRunError):
    """A resumed run's code asked for another operation than its log recorded at that position
    (the workflow changed, or it does something nondeterministic outside the harness)."""

    type = "replay_divergence"

    def __init__(self, *, position: int, recorded: str, requested: str) -> None:
        self.position = position
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"Replay diverged at event {position}: the log holds {recorded}, "
            f"the code asks for {requested}.",
            meta={"position": position, "recorded": recorded, "requested": requested},
        )


# --- The log ----------------------------------------------------------------------------------


class StreamMissingError(FlueStoreError):
    type = "stream_not_found"

    def __init__(self, *, path: str) -> None:
        super().__init__(f'Event stream "{path}" does not exist.')


class StreamClosedError(FlueStoreError):
    type = "stream_closed"

    def __init__(self, *, path: str) -> None:
        super().__init__(f'Event stream "{path}" is closed.')


class StreamConflictError(FlueStoreError):
    """An append named an expected sequence the stream has moved past: a stale writer."""

    type = "stream_conflict"

    def __init__(self, *, path: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f'Event stream "{path}" expected next sequence {expected} but is at {actual}.',
            meta={"expected": expected, "actual": actual},
        )


class EventNotStorableError(FlueStoreError):
    """An event a run emitted cannot be written as JSON (a non-finite number, an object that is
    not JSON data, nesting too deep to encode). The run ends with this error instead; text of
    any kind is always storable."""

    type = "event_not_storable"

    def __init__(self, *, event_type: str, event_index: int, reason: str) -> None:
        super().__init__(
            f'The run\'s "{event_type}" event #{event_index} could not be stored: {reason}',
            details="Events must be plain JSON data; the run was ended without it.",
            meta={"eventType": event_type, "eventIndex": event_index},
        )


class ProductEventVersionError(FlueStoreError):
    type = "product_event_version_unsupported"

    def __init__(self, *, stored_version: object) -> None:
        super().__init__(
            f"Stored event version {stored_version!r} is not supported.",
            meta={"storedVersion": stored_version, "supportedVersion": 3},
        )


class StoreSchemaVersionError(FlueStoreError):
    type = "persisted_schema_version_unsupported"

    def __init__(self, *, location: str, found: int, supported: int) -> None:
        super().__init__(
            f"The store at {location} has schema version {found}; this flue_actors supports "
            f"{supported}. It is never migrated silently: use a matching flue_actors version.",
            meta={"found": found, "supported": supported},
        )
