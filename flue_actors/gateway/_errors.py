"""The HTTP layer's own errors (``flue_actors.errors`` re-exports them), and rendering every
error as Flue's envelope with the headers every error response carries."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import FlueError, FlueHttpError, _quoted_list
from ._protocol import SECURITY_HEADERS, JsonResponse

__all__ = [
    "InternalError",
    "MethodNotAllowedError",
    "PayloadTooLargeError",
    "RouteNotFoundError",
    "ServerShuttingDownError",
    "UnexpectedErrors",
    "UnsupportedMediaTypeError",
    "error_response",
    "handle_flue_error",
]

logger = logging.getLogger("flue_actors.gateway")


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


class PayloadTooLargeError(FlueHttpError):
    """Beyond Flue: bodies over the configured limit are refused before parsing."""

    type = "payload_too_large"
    status = 413

    def __init__(self, *, limit: int) -> None:
        super().__init__(
            "Request body is too large.",
            details=f"Request bodies are limited to {limit} bytes.",
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


def error_response(error: FlueError, *, dev: bool = False, status: int | None = None) -> Response:
    """``error`` as ``{"error": {type, message, details, dev?, meta?}}`` with its status (errors
    that are not HTTP errors answer 500, as in Flue) and headers."""
    return JsonResponse(
        error.envelope(include_dev=dev),
        status_code=status if status is not None else error.status,
        headers={**SECURITY_HEADERS, **error.headers},
    )


async def handle_flue_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, FlueError)
    return error_response(error, dev=bool(getattr(request.app.state, "dev", False)))


class UnexpectedErrors:
    """ASGI middleware: an exception no handler took is logged once and answered with the
    ``internal_error`` envelope. (An exception handler for ``Exception`` would run in Starlette's
    outermost middleware, which re-raises after answering, so the server logs it a second
    time.) The caller learns nothing about internals; the log gets one line and the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            logger.exception("unexpected error handling %s %s", scope["method"], scope["path"])
            if not started:  # else the body is cut short: the server closes the connection
                await error_response(InternalError())(scope, receive, send)
