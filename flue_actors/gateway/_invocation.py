"""``POST /workflows/{name}``: admit a run, or run it to its result with ``?wait=result``."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._jsonvalue import MAX_DEPTH, UNSET, Unset, nesting_exceeds
from .._records import RunRecord
from .._runtime import DiscoveredWorkflow, Runtime
from .._runtime.runtime import check_idempotency_key
from ..errors import (
    ActionInputValidationError,
    FlueError,
    IdempotencyKeyInvalidError,
    InvalidJsonError,
    InvalidRequestError,
    WorkflowInputUnexpectedError,
    WorkflowNotFoundError,
)
from ._draining import Draining, unless_draining
from ._errors import (
    InternalError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    ServerShuttingDownError,
    UnsupportedMediaTypeError,
    error_response,
)
from ._exposure import authorize
from ._known_runs import KnownRuns
from ._protocol import SECURITY_HEADERS, JsonResponse, whole_number
from ._routing import DirectRoute

__all__ = ["idempotency_key", "router"]

router = APIRouter(route_class=DirectRoute)
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
_TRACESTATE_MEMBER = re.compile(
    r"^[a-z0-9][_0-9a-z\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,256}$"
)
_OTHER_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]

_INVOKE_DOC: dict[str, Any] = {
    "parameters": [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["result"]},
            "description": "`result`: answer after the run ends, with its result.",
        },
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "A repeated key with the same input answers the run it admitted.",
        },
    ],
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {}}},
        "description": "The workflow's input as JSON; omit the body for no input.",
    },
    "responses": {
        "202": {"description": "Admitted: `{runId}`."},
        "200": {"description": "With `wait=result`: `{result, runId}`."},
        "503": {"description": "`runtime_unavailable` (draining): no run was created."},
        "400": {"description": "`invalid_request` or `invalid_json`."},
        "404": {"description": "`workflow_not_found`."},
        "413": {"description": "`payload_too_large`."},
        "409": {"description": "`idempotency_key_conflict`: the key admitted other input."},
        "415": {"description": "`unsupported_media_type`."},
        "422": {"description": "`action_input_validation`: no run was created."},
    },
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    size = None if declared is None else whole_number(declared, clamp=limit + 1)
    if size is not None and size > limit:
        raise PayloadTooLargeError(limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        # 1e999 parses as infinity, which no JSON document can hold: refuse it here.
        raise ValueError(f"number {text} is out of range")
    return value


def _parse_json(body: bytes) -> Any:
    """The body's JSON value. It must be UTF-8 (so the bytes of a surrogate are refused, while a
    ``\\ud800`` escape is a string like any other) and nest at most MAX_DEPTH deep, checked
    before parsing, since every layer that handles the value afterwards recurses per level."""
    if nesting_exceeds(body):
        raise InvalidJsonError(
            parse_error=f"arrays and objects are nested more than {MAX_DEPTH} levels deep"
        )
    try:
        return json.loads(
            body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidJsonError(parse_error=str(error)) from None


def _trace_carrier(request: Request) -> dict[str, str] | None:
    traceparent = request.headers.get("traceparent")
    if traceparent is None or not _TRACEPARENT.match(traceparent.strip()):
        return None
    carrier = {"traceparent": traceparent.strip()}
    tracestate = request.headers.get("tracestate")
    if tracestate is not None and len(tracestate) <= 512:
        members = [member.strip() for member in tracestate.split(",") if member.strip()]
        if members and all(_TRACESTATE_MEMBER.match(member) for member in members):
            carrier["tracestate"] = tracestate
    return carrier


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header, checked (refused with 400 when unusable)."""
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1:
        raise IdempotencyKeyInvalidError(reason="the header is given more than once.")
    return check_idempotency_key(values[0])


def _failed_run_response(record: RunRecord) -> Response:
    """A failed ``wait=result`` run, rendered as Flue renders it (status 500, the error's type;
    an untyped failure as ``internal_error``), plus the ``runId`` in ``meta`` (beyond Flue) so
    the caller can read what happened."""
    error = record.error or {"name": "Error", "message": "The run failed."}
    body: dict[str, Any]
    if "type" in error:
        body = {"type": error["type"], "message": error["message"]}
        body["details"] = f'Run "{record.run_id}" ended with an error.'
    else:
        body = InternalError().envelope()["error"]
    body["meta"] = {**error.get("meta", {}), "runId": record.run_id}
    return JsonResponse({"error": body}, status_code=500, headers=SECURITY_HEADERS)


@router.post("/workflows/{name}", openapi_extra=_INVOKE_DOC, summary="Invoke a workflow")
async def invoke_workflow(request: Request) -> Response:
    name: str = request.path_params["name"]
    waits = request.query_params.getlist("wait")
    if len(waits) > 1 or (waits and waits[0] != "result"):
        raise InvalidRequestError(reason='Invalid query parameters: wait must be "result".')
    if not name.strip():
        raise InvalidRequestError(
            reason="Workflow URLs must have the shape /workflows/<name> with a non-empty segment."
        )
    runtime = _runtime(request)
    try:
        workflow: DiscoveredWorkflow = runtime.workflows.get(name)
    except FlueError:
        raise WorkflowNotFoundError(name=name, available=runtime.workflows.names) from None
    if workflow.route is None:  # the same answer as an unknown name: no enumeration
        raise WorkflowNotFoundError(name=name, available=runtime.workflows.names)
    await authorize(request, workflow.route)
    body = await _body(request, request.app.state.max_body_bytes)
    value: Any | Unset = UNSET
    if body.strip():
        content_type = request.headers.get("content-type")
        if not _is_json(content_type):
            raise UnsupportedMediaTypeError(received=content_type)
        value = _parse_json(body)
    try:
        checked = runtime.check_input(name, value)
    except (ActionInputValidationError, WorkflowInputUnexpectedError) as error:
        return error_response(error, dev=request.app.state.dev, status=422)
    draining: Draining = request.app.state.draining
    if draining.started:
        raise ServerShuttingDownError()
    receipt = await runtime.invoke(
        name,
        checked,
        trace_carrier=_trace_carrier(request),
        idempotency_key=idempotency_key(request),
    )
    known: KnownRuns = request.app.state.known_runs
    known.remember(receipt.run_id, name)
    if not waits:
        return JsonResponse({"runId": receipt.run_id}, status_code=202)
    ended, record = await unless_draining(draining, runtime.wait(receipt.run_id))
    if not ended or record is None:
        # The server is stopping: answer as an invocation without wait (the run goes on, or
        # is recovered), so the caller can read it later at /runs/{runId}.
        return JsonResponse({"runId": receipt.run_id}, status_code=202)
    if record.status != "completed":
        return _failed_run_response(record)
    result = None if record.result is UNSET else record.result
    return JsonResponse({"result": result, "runId": receipt.run_id})


@router.api_route("/workflows/{name}", methods=_OTHER_METHODS, include_in_schema=False)
async def workflow_method_not_allowed(request: Request) -> Response:
    raise MethodNotAllowedError(method=request.method, allowed=["POST"])
