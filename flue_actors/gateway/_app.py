"""``create_app(runtime)``: Flue's HTTP protocol over a Runtime, as a FastAPI application."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .._runtime import Runtime
from ..errors import FlueError
from . import _batch as batch
from . import _invocation as invocation
from . import _listing as listing
from . import _run_reads as run_reads
from ._docs import add_docs
from ._draining import Draining
from ._errors import (
    MethodNotAllowedError,
    RouteNotFoundError,
    UnexpectedErrors,
    error_response,
    handle_flue_error,
)
from ._known_runs import KnownRuns
from ._protocol import JsonResponse
from ._routing import add_routes
from ._shared_reads import SharedReads

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES = 1 << 20


def create_app(
    runtime: Runtime,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    list_runs: Callable[..., Any] | None = None,
    dev: bool = False,
    long_poll_seconds: float = 30.0,
    heartbeat_seconds: float = 15.0,
    close_runtime: bool = False,
) -> FastAPI:
    """The gateway for ``runtime``'s workflows.

    ``max_body_bytes`` refuses larger request bodies with 413 before parsing. ``list_runs`` is
    the dependency that authorizes ``GET /runs`` across workflows (not served without it).
    ``dev`` adds the developer-only ``dev`` field to error envelopes. ``close_runtime`` closes
    the runtime when the application shuts down. ``app.state.draining`` (a
    :class:`~flue_actors.gateway._draining.Draining`) is what a server begins when asked to stop,
    so that waiting requests are answered instead of holding the shutdown.
    """
    app = FastAPI(
        title="flue_actors gateway",
        description="Flue's workflow HTTP protocol: invoke workflows, read runs and their events.",
        version="1",
        # /runs/ is not /runs: an unknown route, as in Flue, not a redirect.
        redirect_slashes=False,
        default_response_class=JsonResponse,
        # Served from local assets by add_docs (FastAPI's pages load theirs from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.max_body_bytes = max_body_bytes
    app.state.list_runs_dependency = list_runs
    app.state.dev = dev
    app.state.long_poll_seconds = long_poll_seconds
    app.state.heartbeat_seconds = heartbeat_seconds
    app.state.shared_reads = SharedReads(runtime)
    app.state.known_runs = KnownRuns()
    app.state.draining = Draining()
    for module in (batch, invocation, listing, run_reads):
        add_routes(app, module.router)
    add_docs(app)
    app.add_exception_handler(FlueError, handle_flue_error)
    app.add_middleware(UnexpectedErrors)

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, error: ClientDisconnect) -> Response:
        # The client went away mid-body (or the server's read timeout closed it): nobody is
        # left to answer, and nothing went wrong here.
        return Response(status_code=499)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, error: StarletteHTTPException) -> Response:
        # No route matched: Flue's envelope. An HTTPException from an application dependency
        # keeps FastAPI's usual answer (that is how a `route`/`runs` dependency denies).
        if error.status_code == 404 and request.scope.get("route") is None:
            return error_response(RouteNotFoundError(method=request.method, path=request.url.path))
        if error.status_code == 405:  # routing found the path but not the method
            allowed = (error.headers or {}).get("allow", (error.headers or {}).get("Allow", ""))
            methods = [method.strip() for method in allowed.split(",") if method.strip()]
            return error_response(MethodNotAllowedError(method=request.method, allowed=methods))
        return JsonResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    @app.get("/healthz", summary="Liveness and store reachability (beyond Flue)")
    async def healthz() -> dict[str, str]:
        await runtime.stream_meta("healthz")
        return {"status": "ok"}

    if close_runtime:
        app.router.add_event_handler("shutdown", runtime.close)
    return app
