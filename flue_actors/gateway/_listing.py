"""``GET /runs``: the run listing (beyond Flue, whose ``listRuns`` is server-side only).

Listing one workflow's runs (``?workflow=NAME``) is authorized by that workflow's ``runs``
dependency, like reading one of its runs. Listing across workflows needs the application's own
``list_runs`` dependency passed to ``create_app``; without one it is not served.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._records import MAX_LIST_LIMIT, RUN_STATUSES, RunStatus
from .._runtime import Runtime
from ..errors import FlueError, InvalidRequestError, WorkflowNotFoundError
from ._errors import RouteNotFoundError
from ._exposure import authorize
from ._protocol import JsonResponse, whole_number
from ._routing import DirectRoute

__all__ = ["router"]

router = APIRouter(route_class=DirectRoute)

_LIST_DOC: dict[str, Any] = {
    "parameters": [
        {"name": "workflow", "in": "query", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(RUN_STATUSES)}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ],
    "responses": {
        "200": {"description": "`{runs: RunPointer[], nextCursor?}`, newest first."},
        "400": {"description": "`invalid_request`."},
        "404": {"description": "`workflow_not_found`, or listing across workflows not enabled."},
    },
}


@router.get("/runs", openapi_extra=_LIST_DOC, summary="List runs (beyond Flue)")
async def list_runs(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    query = request.query_params
    workflow = query.get("workflow")
    status = query.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidRequestError(reason=f"status must be one of {', '.join(RUN_STATUSES)}.")
    limit_text = query.get("limit")
    # Past the maximum, a page is the maximum (Flue's rule), however many digits ask for more.
    limit = None if limit_text is None else whole_number(limit_text, clamp=MAX_LIST_LIMIT)
    if limit_text is not None and limit is None:
        raise InvalidRequestError(reason="limit must be a whole number.")
    if workflow is not None:
        try:
            entry = runtime.workflows.get(workflow)
        except FlueError:
            entry = None
        if entry is None or entry.runs is None:
            raise WorkflowNotFoundError(name=workflow, available=runtime.workflows.names)
        await authorize(request, entry.runs)
    else:
        guard = request.app.state.list_runs_dependency
        if guard is None:
            raise RouteNotFoundError(method="GET", path="/runs")
        await authorize(request, guard)
    checked_status: RunStatus | None = status
    page = await runtime.list_runs(
        status=checked_status,
        workflow_name=workflow,
        limit=limit,
        cursor=query.get("cursor"),
    )
    return JsonResponse(page.to_wire())
