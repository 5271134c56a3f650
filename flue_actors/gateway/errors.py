"""Rendering errors as Flue's envelope, with the headers every error response carries."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import FlueError, InternalError
from .protocol import SECURITY_HEADERS, JsonResponse

__all__ = ["UnexpectedErrors", "error_response", "handle_flue_error"]

logger = logging.getLogger("flue_actors.gateway")


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
