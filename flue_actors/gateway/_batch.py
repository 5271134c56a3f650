"""``POST /workflows/{name}/batch``: admit many runs of one workflow in one request.

The body is a JSON array, or NDJSON (``application/x-ndjson``, one item per line); each item is
``{"input": <the workflow's input>, "key": "<idempotency key>"}``, both optional. The answer
lists, in the items' order, ``{"runId"}`` for each admitted (or, by its key, found) run and
``{"error": {...}}`` for each refused item, with the envelope's fields: an item that is not
JSON, fails the schema or reuses a key with other input is refused alone, the others are admitted
together (one store transaction).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._jsonvalue import UNSET, JsonValue, Unset
from .._runtime import Runtime
from .._runtime.runtime import check_idempotency_key
from ..errors import (
    FlueError,
    InvalidJsonError,
    InvalidRequestError,
    MethodNotAllowedError,
    ServerShuttingDownError,
    UnsupportedMediaTypeError,
    WorkflowNotFoundError,
)
from ._draining import Draining
from ._exposure import authorize
from ._invocation import _body, _is_json, _parse_json
from ._known_runs import KnownRuns
from ._protocol import JsonResponse
from ._routing import DirectRoute

__all__ = ["MAX_BATCH_ITEMS", "router"]

router = APIRouter(route_class=DirectRoute)
# More than this in one request is refused: a larger batch is several requests (or the CLI).
MAX_BATCH_ITEMS: Final = 10_000
_NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl")

_BATCH_DOC: dict[str, Any] = {
    "parameters": [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
        "description": 'Items `{"input"?, "key"?}`: a JSON array, or one per line (NDJSON).',
    },
    "responses": {
        "202": {"description": '`{"runs": [{"runId"} | {"error"}, ...]}`, in the items\' order.'},
        "400": {"description": "`invalid_request` or `invalid_json` (the whole body)."},
        "404": {"description": "`workflow_not_found`."},
        "413": {"description": "`payload_too_large`."},
        "415": {"description": "`unsupported_media_type`."},
        "503": {"description": "`server_shutting_down`: no run was created."},
    },
}


def _items(request: Request, body: bytes) -> list[Any | FlueError]:
    """The body's items: parsed values, or per NDJSON line the error that line has."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media in _NDJSON:
        items: list[Any | FlueError] = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append(_parse_json(line))
            except InvalidJsonError as error:
                reason = error.details.splitlines()[0].removeprefix("The JSON parser reported: ")
                items.append(InvalidJsonError(parse_error=reason, subject=f"Line {number}"))
        return items
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaTypeError(received=request.headers.get("content-type"))
    parsed = _parse_json(body)
    if not isinstance(parsed, list):
        raise InvalidRequestError(reason="A batch body is a JSON array of items.")
    return list(parsed)


def _item(
    runtime: Runtime, name: str, item: Any
) -> tuple[JsonValue | Unset, str | None] | FlueError:
    if isinstance(item, FlueError):
        return item
    if not isinstance(item, dict) or set(item) - {"input", "key"}:
        return InvalidRequestError(reason='Each item is an object with "input" and/or "key".')
    key = item.get("key")
    try:
        checked = None if key is None else check_idempotency_key(key)
        return runtime.check_input(name, item.get("input", UNSET)), checked
    except FlueError as error:
        return error


@router.post("/workflows/{name}/batch", openapi_extra=_BATCH_DOC, summary="Invoke in bulk")
async def invoke_batch(request: Request) -> Response:
    name: str = request.path_params["name"]
    runtime: Runtime = request.app.state.runtime
    try:
        workflow = runtime.workflows.get(name)
    except FlueError:
        raise WorkflowNotFoundError(name=name, available=runtime.workflows.names) from None
    if workflow.route is None:  # as for POST /workflows/{name}: no enumeration
        raise WorkflowNotFoundError(name=name, available=runtime.workflows.names)
    await authorize(request, workflow.route)
    items = _items(request, await _body(request, request.app.state.max_body_bytes))
    if len(items) > MAX_BATCH_ITEMS:
        raise InvalidRequestError(reason=f"A batch holds at most {MAX_BATCH_ITEMS} items.")
    checked = [_item(runtime, name, item) for item in items]
    draining: Draining = request.app.state.draining
    if draining.started:
        raise ServerShuttingDownError()
    admissible = [item for item in checked if not isinstance(item, FlueError)]
    outcomes = iter(await runtime._admit(workflow, admissible) if admissible else [])
    known: KnownRuns = request.app.state.known_runs
    answers: list[dict[str, Any]] = []
    for item in checked:
        outcome = item if isinstance(item, FlueError) else next(outcomes)
        if isinstance(outcome, FlueError):
            answers.append(outcome.envelope(include_dev=request.app.state.dev))
        else:
            known.remember(outcome.run_id, name)
            answers.append({"runId": outcome.run_id})
    return JsonResponse({"runs": answers}, status_code=202)


@router.api_route(
    "/workflows/{name}/batch",
    methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def batch_method_not_allowed(request: Request) -> Response:
    raise MethodNotAllowedError(method=request.method, allowed=["POST"])
