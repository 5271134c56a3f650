"""Every error flue_actors raises on purpose.

Each class owns its wire ``type`` string (Flue's vocabulary) and, for errors that reach HTTP, its
status. Constructors take structured data and build the caller-safe ``message`` and ``details``
themselves, so call sites never invent phrasing. ``dev`` carries developer-only hints (alternatives,
file paths) and is rendered only in local mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "AbortError",
    "ActionInputValidationError",
    "ActionOutputSerializationError",
    "ActionOutputValidationError",
    "BatchInputError",
    "DefinitionError",
    "DelegationDepthExceededError",
    "EventNotStorableError",
    "FlueError",
    "FlueHttpError",
    "IdempotencyKeyConflictError",
    "IdempotencyKeyInvalidError",
    "InternalError",
    "InvalidJsonError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "ModelNotResolvedError",
    "ModelRequestError",
    "OperationFailedError",
    "PayloadTooLargeError",
    "ProductEventVersionError",
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
    "SkillNotRegisteredError",
    "StoreSchemaVersionError",
    "StreamClosedError",
    "StreamConflictError",
    "StreamMissingError",
    "StreamPayloadConflictError",
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


class FlueHttpError(FlueError):
    """An error that belongs to the HTTP layer and carries its own status."""

    status: ClassVar[int] = 400


# --- HTTP vocabulary --------------------------------------------------------------------------


class MethodNotAllowedError(FlueHttpError):
    type = "method_not_allowed"
    status = 405

    def __init__(self, *, method: str, allowed: Sequence[str]) -> None:
        self.allowed = tuple(allowed)
        super().__init__(
            f"HTTP method {method} is not allowed on this endpoint.",
            details=f"This endpoint accepts {_quoted_list(self.allowed)} only.",
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class UnsupportedMediaTypeError(FlueHttpError):
    type = "unsupported_media_type"
    status = 415

    def __init__(self, *, received: str | None) -> None:
        first = (
            f'Received Content-Type: "{received}".'
            if received
            else "No Content-Type header was sent."
        )
        super().__init__(
            "Request body must be sent as application/json.",
            details=first + "\nSend the request body as JSON with the header "
            '"Content-Type: application/json", or omit the body entirely (and the Content-Type '
            "header) if the request doesn't have a payload.",
        )


class InvalidJsonError(FlueHttpError):
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


class InvalidRequestError(FlueHttpError):
    type = "invalid_request"
    status = 400

    def __init__(self, *, reason: str) -> None:
        super().__init__("Request is malformed.", details=reason)


class PayloadTooLargeError(FlueHttpError):
    """Beyond Flue: bodies over the configured limit are refused before parsing."""

    type = "payload_too_large"
    status = 413

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            "Request body is too large.",
            details=f"Request bodies are limited to {limit} bytes.",
        )


class WorkflowNotFoundError(FlueHttpError):
    type = "workflow_not_found"
    status = 404

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        self.name = name
        super().__init__(
            f'Workflow "{name}" is not registered.',
            details="Verify the workflow name is correct.",
            dev=f"Available workflows: {_quoted_list(available)}.",
        )


class RunNotFoundError(FlueHttpError):
    type = "run_not_found"
    status = 404

    def __init__(self, *, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f'Run "{run_id}" was not found.',
            details="Verify the run id is correct and its history is still available.",
        )


class RunNotActiveError(FlueHttpError):
    """Beyond Flue: cancelling a run that has already ended."""

    type = "run_not_active"
    status = 409

    def __init__(self, *, run_id: str) -> None:
        super().__init__(
            f'Run "{run_id}" is not active.',
            details="The run has already ended; only active runs can be cancelled.",
        )


class ServerShuttingDownError(FlueHttpError):
    """The server is shutting down and admits no new runs: Flue's ``runtime_unavailable`` in
    its ``draining`` state."""

    type = "runtime_unavailable"
    status = 503

    def __init__(self) -> None:
        super().__init__(
            "The server is shutting down.",
            details="No new runs are admitted while it stops; retry against a running server.",
            meta={"state": "draining"},
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1", "Connection": "close"}


class RunStoreUnavailableError(FlueHttpError):
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


class RouteNotFoundError(FlueHttpError):
    type = "route_not_found"
    status = 404

    def __init__(self, *, method: str, path: str) -> None:
        super().__init__(
            f"No route matches {method} {path}.",
            details="Verify the request method and path are correct.",
        )


class InternalError(FlueHttpError):
    """The only thing a caller learns about an unexpected failure."""

    type = "internal_error"
    status = 500

    def __init__(self) -> None:
        super().__init__(
            "An internal error occurred.",
            details="The server encountered an unexpected error while handling this request.",
        )


# --- Definitions and discovery ----------------------------------------------------------------


class DefinitionError(FlueError, TypeError):
    """A ``define_*`` call was given something it cannot accept. Raised at import time."""

    type = "definition_invalid"


class WorkflowLoadError(FlueError):
    """A workflow module could not be imported or does not define a workflow."""

    type = "workflow_load_failed"

    def __init__(self, *, name: str, reason: str, path: str = "") -> None:
        self.name = name
        super().__init__(
            f'Workflow "{name}" could not be loaded: {reason}',
            details="The workflow module failed to load.",
            dev=f"Module path: {path}" if path else "",
        )


class WorkflowInvocationNotConfiguredError(FlueError):
    """Ambient ``invoke()`` with no runtime to admit the run: called outside a run, in a
    process with no runtime open."""

    type = "workflow_invocation_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "Workflow invocation is not configured in this runtime.",
            dev="Call invoke() inside a run, or while a Runtime is open in this process "
            "(runtime.serve(), or async with Runtime(...)).",
        )


class WorkflowNotDiscoveredError(FlueError):
    type = "workflow_not_discovered"

    def __init__(self, *, name: str | None = None) -> None:
        subject = f'Workflow "{name}"' if name else "The workflow"
        super().__init__(
            f"{subject} is not one of this runtime's discovered workflows.",
            details="Pass a workflow definition that the runtime was created with.",
        )


# --- Input, output, admission -----------------------------------------------------------------


class WorkflowInputUnexpectedError(FlueError):
    type = "workflow_input_unexpected"

    def __init__(self, *, workflow: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" does not accept input.',
            details="Omit the input: this workflow declares no input schema.",
            meta={"workflow": workflow},
        )


class WorkflowInputSerializationError(FlueError):
    type = "workflow_input_serialization"

    def __init__(self, *, workflow: str, reason: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" input is not JSON-serializable: {reason}',
            details="Workflow input must be plain JSON data.",
            meta={"workflow": workflow},
        )


class WorkflowAdmissionFailedError(FlueError):
    type = "workflow_admission_failed"

    def __init__(self, *, workflow: str, reason: str) -> None:
        super().__init__(
            f'Workflow "{workflow}" could not be admitted: {reason}',
            meta={"workflow": workflow},
        )


class IdempotencyKeyConflictError(FlueError):
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


class IdempotencyKeyInvalidError(FlueError):
    type = "idempotency_key_invalid"
    status = 400

    def __init__(self, *, reason: str) -> None:
        super().__init__(
            f"Invalid idempotency key: {reason}",
            details="A key is 1 to 255 printable ASCII characters.",
        )


class BatchInputError(FlueError):
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


class ActionInputValidationError(FlueError):
    type = "action_input_validation"

    def __init__(self, *, action: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Action "{action}" input does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"action": action, "issues": self.issues},
        )


class ActionOutputValidationError(FlueError):
    type = "action_output_validation"

    def __init__(self, *, action: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Action "{action}" output does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"action": action, "issues": self.issues},
        )


class ActionOutputSerializationError(FlueError):
    type = "action_output_serialization"

    def __init__(self, *, action: str, reason: str) -> None:
        super().__init__(
            f'Action "{action}" output is not JSON-serializable: {reason}',
            details="Action results must be plain JSON data.",
            meta={"action": action},
        )


# --- Harness ------------------------------------------------------------------------------------


class SessionNotFoundError(FlueError):
    type = "session_not_found"

    def __init__(self, *, name: str) -> None:
        super().__init__(f'Session "{name}" does not exist.')


class SessionAlreadyExistsError(FlueError):
    type = "session_already_exists"

    def __init__(self, *, name: str) -> None:
        super().__init__(f'Session "{name}" already exists.')


class SessionBusyError(FlueError):
    type = "session_busy"

    def __init__(self, *, name: str, kind: str) -> None:
        super().__init__(
            f'Session "{name}" is busy running {kind}.',
            details="Await the running operation, or use a separately named session in parallel.",
        )


class OperationFailedError(FlueError):
    type = "operation_failed"

    def __init__(self, *, kind: str, reason: str) -> None:
        super().__init__(f"{kind} failed: {reason}")


class SkillNotRegisteredError(FlueError):
    type = "skill_not_registered"

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        super().__init__(
            f'Skill "{name}" is not registered.',
            details="Register it in the agent's skills, or use a registered skill name.",
            dev=f"Registered skills: {_quoted_list(list(available))}.",
        )


class SubagentNotDeclaredError(FlueError):
    type = "subagent_not_declared"

    def __init__(self, *, name: str, available: Sequence[str] = ()) -> None:
        super().__init__(
            f'Subagent "{name}" is not declared.',
            details="Declare it in the agent's subagents, or omit agent to reuse this agent.",
            dev=f"Declared subagents: {_quoted_list(list(available))}.",
        )


class DelegationDepthExceededError(FlueError):
    type = "delegation_depth_exceeded"

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            f"Delegation depth limit of {limit} exceeded.",
            details="Tasks may nest at most this deep; do the work in this session instead.",
        )


class ToolInputValidationError(FlueError):
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


class ToolOutputValidationError(FlueError):
    type = "tool_output_validation"

    def __init__(self, *, tool: str, issues: Sequence[Mapping[str, Any]]) -> None:
        self.issues = [dict(i) for i in issues]
        super().__init__(
            f'Tool "{tool}" output does not match the required schema.',
            details=_issue_list(self.issues),
            meta={"tool": tool, "issues": self.issues},
        )


class ToolOutputSerializationError(FlueError):
    type = "tool_output_serialization"

    def __init__(self, *, tool: str, reason: str) -> None:
        super().__init__(
            f'Tool "{tool}" output is not JSON-serializable: {reason}',
            dev="Return JSON data (or a pydantic model) from the tool's run function.",
            meta={"tool": tool},
        )


class ToolNameConflictError(FlueError):
    """Two model tools of one agent share a name (a built-in workspace tool and a
    ``define_tool`` tool, say), or a tool takes a name the framework reserves: the model could
    not tell them apart."""

    type = "tool_name_conflict"

    def __init__(self, *, name: str, reason: str | None = None) -> None:
        what = f"conflicts with {reason}" if reason else "is used by more than one tool"
        super().__init__(f'Tool name "{name}" {what}.')


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


class SandboxPathError(FlueError, ValueError):
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


class ModelNotResolvedError(FlueError):
    type = "model_not_resolved"

    def __init__(self, *, model: str, reason: str) -> None:
        super().__init__(f'model "{model}" could not be resolved: {reason}')


class ModelRequestError(FlueError):
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


class RunCancelledError(FlueError):
    type = "run_cancelled"

    def __init__(self, *, run_id: str, reason: str = "The run was cancelled.") -> None:
        super().__init__(reason, meta={"runId": run_id})


class RunInterruptedError(FlueError):
    """The run's owner died; recovery ended the run (as Flue's Cloudflare target does)."""

    type = "run_interrupted"

    def __init__(self) -> None:
        super().__init__(
            "Flue workflow execution was interrupted. Start a new workflow run explicitly if "
            "retry is appropriate."
        )


# --- The log ----------------------------------------------------------------------------------


class StreamMissingError(FlueError):
    type = "stream_not_found"

    def __init__(self, *, path: str) -> None:
        super().__init__(f'Event stream "{path}" does not exist.')


class StreamClosedError(FlueError):
    type = "stream_closed"

    def __init__(self, *, path: str) -> None:
        super().__init__(f'Event stream "{path}" is closed.')


class StreamConflictError(FlueError):
    """An append named an expected sequence the stream has moved past: a stale writer."""

    type = "stream_conflict"

    def __init__(self, *, path: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f'Event stream "{path}" expected next sequence {expected} but is at {actual}.',
            meta={"expected": expected, "actual": actual},
        )


class EventNotStorableError(FlueError):
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


class StreamPayloadConflictError(FlueError):
    type = "stream_payload_conflict"

    def __init__(self, *, path: str, key: str) -> None:
        super().__init__(
            f'Event stream "{path}" already holds key "{key}" with a conflicting payload.'
        )


class ProductEventVersionError(FlueError):
    type = "product_event_version_unsupported"

    def __init__(self, *, stored_version: object) -> None:
        super().__init__(
            f"Stored event version {stored_version!r} is not supported.",
            meta={"storedVersion": stored_version, "supportedVersion": 3},
        )


class StoreSchemaVersionError(FlueError):
    type = "persisted_schema_version_unsupported"

    def __init__(self, *, location: str, found: int, supported: int) -> None:
        super().__init__(
            f"The store at {location} has schema version {found}; this flue_actors supports "
            f"{supported}. It is never migrated silently: use a matching flue_actors version.",
            meta={"found": found, "supported": supported},
        )
