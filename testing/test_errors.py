"""The error hierarchy: every error in exactly one family, the drawing in ``flue_actors.errors``
true to the classes, and the wire ``type`` and status of every error as they were."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import flue_actors.errors as errors
import flue_actors.gateway._errors as gateway_errors
from flue_actors._runtime.ray.deployment import HostDrainingError
from flue_actors._runtime.ray.environment import RayClusterUnavailableError
from flue_actors.errors import FlueError
from flue_actors.store._postgres import StoreConnectionError

FAMILIES: list[type[FlueError]] = [
    errors.FlueDefinitionError,
    errors.FlueInputError,
    errors.FlueRunError,
    errors.FlueHarnessError,
    errors.FlueModelError,
    errors.FlueStoreError,
    errors.FlueHttpError,
]

# The wire vocabulary clients match on: a change here breaks them.
WIRE = {
    "ActionInputValidationError": ("action_input_validation", 500),
    "ActionOutputSerializationError": ("action_output_serialization", 500),
    "ActionOutputValidationError": ("action_output_validation", 500),
    "DefinitionError": ("definition_invalid", 500),
    "DelegationDepthExceededError": ("delegation_depth_exceeded", 500),
    "EventNotStorableError": ("event_not_storable", 500),
    "FlueError": ("flue_error", 500),
    "FlueHttpError": ("flue_error", 400),
    "InternalError": ("internal_error", 500),
    "BatchInputError": ("batch_input_invalid", 400),
    "IdempotencyKeyConflictError": ("idempotency_key_conflict", 409),
    "IdempotencyKeyInvalidError": ("idempotency_key_invalid", 400),
    "InvalidJsonError": ("invalid_json", 400),
    "InvalidRequestError": ("invalid_request", 400),
    "MethodNotAllowedError": ("method_not_allowed", 405),
    "ModelNotResolvedError": ("model_not_resolved", 500),
    "ModelRequestError": ("model_request_failed", 500),
    "OperationFailedError": ("operation_failed", 500),
    "PayloadTooLargeError": ("payload_too_large", 413),
    "ProductEventVersionError": ("product_event_version_unsupported", 500),
    "RouteNotFoundError": ("route_not_found", 404),
    "RunCancelledError": ("run_cancelled", 500),
    "RunInterruptedError": ("run_interrupted", 500),
    "ReplayDivergenceError": ("replay_divergence", 500),
    "RunNotActiveError": ("run_not_active", 409),
    "RunNotFoundError": ("run_not_found", 404),
    "SandboxPathError": ("sandbox_path_invalid", 500),
    "ServerShuttingDownError": ("runtime_unavailable", 503),
    "SessionAlreadyExistsError": ("session_already_exists", 500),
    "SessionBusyError": ("session_busy", 500),
    "SessionNotFoundError": ("session_not_found", 500),
    "SkillNotRegisteredError": ("skill_not_registered", 500),
    "StoreSchemaVersionError": ("persisted_schema_version_unsupported", 500),
    "StreamClosedError": ("stream_closed", 500),
    "StreamConflictError": ("stream_conflict", 500),
    "StreamMissingError": ("stream_not_found", 500),
    "SubagentNotDeclaredError": ("subagent_not_declared", 500),
    "ToolNameConflictError": ("tool_name_conflict", 500),
    "UnsupportedMediaTypeError": ("unsupported_media_type", 415),
    "WorkflowAdmissionFailedError": ("workflow_admission_failed", 500),
    "WorkflowInputSerializationError": ("workflow_input_serialization", 500),
    "WorkflowInputUnexpectedError": ("workflow_input_unexpected", 500),
    "WorkflowLoadError": ("workflow_load_failed", 500),
    "WorkflowNotDiscoveredError": ("workflow_not_discovered", 500),
    "WorkflowNotFoundError": ("workflow_not_found", 404),
    "RunStoreUnavailableError": ("run_store_unavailable", 503),
    "StoreConnectionError": ("run_store_unavailable", 503),
    "ToolInputValidationError": ("tool_input_validation", 500),
    "ToolOutputSerializationError": ("tool_output_serialization", 500),
    "ToolOutputValidationError": ("tool_output_validation", 500),
    "WorkflowInvocationNotConfiguredError": ("workflow_invocation_not_configured", 500),
    "MCPConnectionError": ("mcp_connection_failed", 500),
    "SkillDefinitionValidationError": ("skill_definition_validation", 500),
    "HostDrainingError": ("host_draining", 500),
    "RayClusterUnavailableError": ("ray_cluster_unavailable", 500),
}
OUTSIDE = {"AbortError", "ResultUnavailableError"}


def _every_error() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {name: getattr(errors, name) for name in errors.__all__}
    found["HostDrainingError"] = HostDrainingError
    found["RayClusterUnavailableError"] = RayClusterUnavailableError
    found["StoreConnectionError"] = StoreConnectionError
    return found


def _leaves() -> dict[str, type[FlueError]]:
    bases = {FlueError, *FAMILIES}
    return {
        name: error
        for name, error in _every_error().items()
        if issubclass(error, FlueError) and error not in bases
    }


def test_every_error_is_in_exactly_one_family() -> None:
    for name, error in _leaves().items():
        families = [family for family in FAMILIES if issubclass(error, family)]
        assert len(families) == 1, f"{name} is in {families}"
    assert {name for name, e in _every_error().items() if not issubclass(e, FlueError)} == OUTSIDE


def test_every_family_is_a_flue_error_and_no_family_is_in_another() -> None:
    for family in FAMILIES:
        assert family.__bases__ == (FlueError,)
        assert family.__name__ in errors.__all__


def test_wire_types_and_statuses_are_unchanged() -> None:
    errors_with_types = {
        name: (error.type, error.status)
        for name, error in _every_error().items()
        if issubclass(error, FlueError) and error not in FAMILIES[:-1]
    }
    assert errors_with_types == WIRE


def test_the_drawing_in_the_docstring_is_the_hierarchy() -> None:
    """Each family's branch in the module docstring lists exactly that family's errors."""
    doc = errors.__doc__
    assert doc is not None
    drawn: dict[str, set[str]] = {}
    family = ""
    for line in doc.splitlines():
        top = re.match(r"\s+[├└]── (Flue\w+Error)\b", line)
        leaf = re.match(r"\s+│?\s+[├└]── (\w+Error)\b", line)
        if top:
            family = top.group(1)
            drawn[family] = set()
        elif leaf:
            drawn[family].add(leaf.group(1))
    actual = {
        f.__name__: {name for name, e in _leaves().items() if issubclass(e, f)} for f in FAMILIES
    }
    assert drawn == actual


@pytest.mark.parametrize(
    "name",
    [
        "InternalError",
        "MethodNotAllowedError",
        "PayloadTooLargeError",
        "RouteNotFoundError",
        "ServerShuttingDownError",
        "UnsupportedMediaTypeError",
    ],
)
def test_http_only_errors_live_with_the_gateway_and_stay_importable_from_errors(
    name: str,
) -> None:
    error = getattr(gateway_errors, name)
    assert error.__module__ == "flue_actors.gateway"
    assert getattr(errors, name) is error
    assert issubclass(error, errors.FlueHttpError)


def test_importing_the_errors_loads_no_web_framework() -> None:
    code = (
        "import sys\n"
        "from flue_actors.errors import FlueError, FlueHttpError, RunNotFoundError\n"
        "assert 'fastapi' not in sys.modules and 'starlette' not in sys.modules\n"
        "from flue_actors.errors import MethodNotAllowedError\n"
        "assert 'fastapi' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
