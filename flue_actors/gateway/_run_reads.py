"""``/runs/{runId}``: a run's record and event stream, as Flue's Durable Streams protocol serves it.

Order of checks, as in Flue: the run must exist and belong to a workflow with a ``runs`` export
(otherwise the same 404 as an unknown id, and the dependency is not called); then the ``runs``
dependency authorizes every method; then anything but GET/HEAD is 405.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from .._ids import is_run_id
from .._jsonvalue import dumps
from .._records import RunRecord
from .._runtime import DiscoveredWorkflow, Runtime
from ..errors import InvalidRequestError, RunNotActiveError, RunNotFoundError
from ..store import StreamPage, format_offset, parse_offset, run_stream
from ._draining import Draining, unless_draining
from ._errors import MethodNotAllowedError
from ._exposure import authorize
from ._known_runs import KnownRuns
from ._protocol import (
    SECURITY_HEADERS,
    STREAM_CLOSED,
    STREAM_CURSOR,
    STREAM_NEXT_OFFSET,
    STREAM_UP_TO_DATE,
    JsonResponse,
    etag,
    is_read_offset,
    next_cursor,
    sse_frame,
    tail_count,
)
from ._routing import DirectRoute
from ._shared_reads import SharedPage, SharedReads, checked_json

__all__ = ["router"]

router = APIRouter(route_class=DirectRoute)
# Other methods still pass the `runs` dependency first, then get 405 (Flue's order).
_OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_RUN_ID_DOC: dict[str, Any] = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_READ_DOC: dict[str, Any] = {
    "parameters": [
        _RUN_ID_DOC,
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "string"},
            "description": "Read strictly after this offset: `-1`, `now` (the tail) or an offset.",
        },
        {
            "name": "tail",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1},
            "description": "With offset -1: only the last N events.",
        },
        {
            "name": "live",
            "in": "query",
            "schema": {"type": "string", "enum": ["long-poll", "sse"]},
            "description": "Wait for new events (needs `offset`).",
        },
        {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string"},
            "description": "The long-poll cursor from the previous response.",
        },
        {
            "name": "meta",
            "in": "query",
            "schema": {"type": "string"},
            "allowEmptyValue": True,
            "description": "Present: answer with the run record instead of events.",
        },
    ],
    "responses": {
        "200": {"description": "Events (JSON array), the run record (`?meta`), or an SSE stream."},
        "204": {"description": "Long-poll: nothing new before the timeout."},
        "304": {"description": "Not modified (`If-None-Match`)."},
        "400": {"description": "`invalid_request`."},
        "404": {"description": "`run_not_found`."},
        "405": {"description": "`method_not_allowed`."},
    },
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _shared(request: Request) -> SharedReads:
    shared: SharedReads = request.app.state.shared_reads
    return shared


async def _exposed_run(request: Request, run_id: str, *, record: bool) -> RunRecord | None:
    """The run (if ``record``; else ``None``) once its workflow exposes its runs and the
    workflow's ``runs`` dependency allows the request; else the generic 404 (or the denial)."""
    runtime = _runtime(request)
    known: KnownRuns = request.app.state.known_runs
    found = None
    workflow_name = None if record else known.workflow_of(run_id)
    if workflow_name is None:
        found = await runtime.get_run(run_id) if is_run_id(run_id) else None
        if found is not None:
            workflow_name = found.workflow_name
            known.remember(run_id, workflow_name)
    workflow: DiscoveredWorkflow | None = None
    if workflow_name is not None and workflow_name in runtime.workflows:
        workflow = runtime.workflows.get(workflow_name)
    if workflow is None or workflow.runs is None:
        raise RunNotFoundError(run_id=run_id)
    await authorize(request, workflow.runs)
    return found if record else None


@router.api_route("/runs/{run_id}", methods=_OTHER_METHODS, include_in_schema=False)
@router.head("/runs/{run_id}", include_in_schema=False)
@router.get("/runs/{run_id}", openapi_extra=_READ_DOC, summary="Read a run")
async def read_run(request: Request) -> Response:
    run_id: str = request.path_params["run_id"]
    method = request.method
    meta = method == "GET" and "meta" in request.query_params
    record = await _exposed_run(request, run_id, record=meta)
    if method not in ("GET", "HEAD"):
        raise MethodNotAllowedError(method=method, allowed=["GET", "HEAD"])
    if method == "HEAD":
        return await _head(request, run_id)
    if meta:
        assert record is not None
        return JsonResponse(record.to_wire())
    return await _read(request, run_id)


@router.post(
    "/runs/{run_id}/cancel",
    summary="Cancel a run (beyond Flue)",
    openapi_extra={"parameters": [_RUN_ID_DOC]},
)
async def cancel_run(request: Request) -> Response:
    """Cancel an active run, behind its workflow's ``runs`` dependency. The run ends with an
    errored ``run_end`` of type ``run_cancelled``."""
    run_id: str = request.path_params["run_id"]
    record = await _exposed_run(request, run_id, record=True)
    assert record is not None
    if record.is_terminal or not await _runtime(request).cancel(run_id):
        raise RunNotActiveError(run_id=run_id)
    return JsonResponse({"runId": run_id, "cancelled": True}, status_code=202)


async def _head(request: Request, run_id: str) -> Response:
    meta = await _runtime(request).stream_meta(run_id)
    if meta is None:
        error = RunNotFoundError(run_id=run_id)
        return Response(status_code=error.status, headers=SECURITY_HEADERS)
    headers = {
        "Content-Type": "application/json",
        **SECURITY_HEADERS,
        STREAM_NEXT_OFFSET: meta.next_offset,
        STREAM_UP_TO_DATE: "true",
        "Cache-Control": "no-store",
        "ETag": etag(run_stream(run_id), "-1", meta.next_offset, meta.closed),
    }
    if meta.closed:
        headers[STREAM_CLOSED] = "true"
    return Response(status_code=200, headers=headers)


async def _read(request: Request, run_id: str) -> Response:
    query = request.query_params
    offsets, tails = query.getlist("offset"), query.getlist("tail")
    live = query.get("live")
    if len(offsets) > 1:
        raise InvalidRequestError(reason="Duplicate offset parameters are not allowed.")
    if len(tails) > 1:
        raise InvalidRequestError(reason="Duplicate tail parameters are not allowed.")
    tail = tail_count(tails[0]) if tails else None
    if tails and tail is None:
        raise InvalidRequestError(reason="Tail must be an integer greater than or equal to 1.")
    if live is not None and not offsets:
        raise InvalidRequestError(reason="Offset is required for live mode.")
    if live is not None and live not in ("long-poll", "sse"):
        raise InvalidRequestError(reason='Invalid live mode. Use "long-poll" or "sse".')
    offset = offsets[0] if offsets else "-1"
    if not is_read_offset(offset):
        raise InvalidRequestError(reason="Invalid offset format.")

    runtime = _runtime(request)
    # Where the stream stands is needed only to resolve `now` (live) or `tail`: a run's record
    # and its stream are admitted in one transaction, so an exposed run's stream exists.
    if (offset == "now" and live is not None) or (offset == "-1" and tail is not None):
        meta = await runtime.stream_meta(run_id)
        if meta is None:
            raise RunNotFoundError(run_id=run_id)
        if offset == "now":
            offset = meta.next_offset
        elif tail is not None:
            offset = format_offset(max(-1, parse_offset(meta.next_offset) - tail))

    if live == "sse":
        return StreamingResponse(
            _sse(request, run_id, offset),
            # Given as a header, not media_type, which would append "; charset=utf-8".
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **SECURITY_HEADERS,
            },
        )
    if live is None:
        return _catch_up(request, run_id, offset, await runtime.read_events(run_id, offset=offset))
    shared = await _shared(request).read(run_id, offset)
    if live == "long-poll":
        return await _long_poll(request, run_id, offset, shared)
    raise AssertionError(f"unreachable live mode {live!r}")


def _catch_up(request: Request, run_id: str, offset: str, page: StreamPage) -> Response:
    closed = page.closed and page.up_to_date
    tag = None if offset == "now" else etag(run_stream(run_id), offset, page.next_offset, closed)
    if tag is not None and request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, **SECURITY_HEADERS})
    headers = {
        STREAM_NEXT_OFFSET: page.next_offset,
        "Cache-Control": "no-store",
        **SECURITY_HEADERS,
    }
    if tag is not None:
        headers["ETag"] = tag
    if page.up_to_date:
        headers[STREAM_UP_TO_DATE] = "true"
    if closed:
        headers[STREAM_CLOSED] = "true"
    return Response(checked_json(page), media_type="application/json", headers=headers)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _until_append_or_disconnect(
    request: Request, run_id: str, length: int, timeout: float
) -> str:
    """``data``, ``timeout`` or ``aborted``: whichever comes first (the server beginning to
    stop counts as ``timeout``: the reader gets where the stream stands, and may ask again)."""
    waiting = asyncio.ensure_future(
        _runtime(request).wait_for_events(run_id, length=length, timeout=timeout)
    )
    leaving = asyncio.ensure_future(_disconnected(request))
    draining: Draining = request.app.state.draining
    stopping = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait({waiting, leaving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, leaving, stopping):
            task.cancel()
    if leaving.done() and not leaving.cancelled():
        return "aborted"
    return "data" if waiting.done() and not waiting.cancelled() and waiting.result() else "timeout"


async def _long_poll(request: Request, run_id: str, offset: str, shared: SharedPage) -> Response:
    runtime = _runtime(request)
    page = shared.page
    client_cursor = request.query_params.get("cursor")
    if not page.events and not (page.closed and page.up_to_date):
        waited = await _until_append_or_disconnect(
            request, run_id, parse_offset(offset) + 1, request.app.state.long_poll_seconds
        )
        if waited == "aborted":
            return Response(status_code=499, headers=SECURITY_HEADERS)
        if waited == "data":
            shared = await _shared(request).read(run_id, offset)
            page = shared.page
    cursor = next_cursor(runtime.clock.now_ms(), client_cursor)
    if not page.events:
        meta = await runtime.stream_meta(run_id)
        headers = {
            **SECURITY_HEADERS,
            STREAM_NEXT_OFFSET: page.next_offset,
            STREAM_UP_TO_DATE: "true",
            STREAM_CURSOR: cursor,
        }
        if meta is not None and meta.closed:
            headers[STREAM_CLOSED] = "true"
        return Response(status_code=204, headers=headers)
    closed = page.closed and page.up_to_date
    headers = {
        "Cache-Control": "no-store",
        **SECURITY_HEADERS,
        STREAM_NEXT_OFFSET: page.next_offset,
        STREAM_CURSOR: cursor,
    }
    if page.up_to_date:
        headers[STREAM_UP_TO_DATE] = "true"
    if closed:
        headers[STREAM_CLOSED] = "true"
    if offset != "now":
        headers["ETag"] = etag(run_stream(run_id), offset, page.next_offset, closed)
    return Response(shared.json, media_type="application/json", headers=headers)


async def _sse(request: Request, run_id: str, offset: str) -> AsyncIterator[str]:
    """Data and control frames until the stream is closed at the reader's offset, or the server
    begins to stop (the reader resumes elsewhere from its last control frame's offset).
    Starlette cancels this generator when the client disconnects, which releases its waiter."""
    runtime = _runtime(request)
    state = request.app.state
    draining: Draining = state.draining
    last_beat = time.monotonic()
    reads = _shared(request)
    while True:
        shared = await reads.read(run_id, offset)
        page = shared.page
        data = sse_frame("data", shared.json) if page.events else ""
        closed = page.closed and page.up_to_date
        control: dict[str, Any] = {"streamNextOffset": page.next_offset}
        if closed:
            control["streamClosed"] = True
        else:
            control["streamCursor"] = next_cursor(runtime.clock.now_ms())
            if page.up_to_date:
                control["upToDate"] = True
        # One write for the pair: a reader never sees data without the offset that follows it.
        yield data + sse_frame("control", dumps(control))
        offset = page.next_offset
        if closed:
            return
        if not page.up_to_date:
            continue
        deadline = time.monotonic() + state.long_poll_seconds
        while True:
            now = time.monotonic()
            if now - last_beat >= state.heartbeat_seconds:
                yield ": heartbeat\n\n"
                last_beat = now
            remaining = deadline - now
            if remaining <= 0:
                keep_alive = {
                    "streamNextOffset": offset,
                    "streamCursor": next_cursor(runtime.clock.now_ms()),
                    "upToDate": True,
                }
                yield sse_frame("control", dumps(keep_alive))
                break
            wait = min(remaining, state.heartbeat_seconds - (now - last_beat))
            waited, appended = await unless_draining(
                draining,
                runtime.wait_for_events(
                    run_id, length=parse_offset(offset) + 1, timeout=max(wait, 0.0)
                ),
            )
            if not waited:
                return
            if appended:
                break
