"""Rendering errors as Flue's envelope, with the headers every error response carries."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ..errors import FlueError, InternalError
from .protocol import SECURITY_HEADERS

__all__ = ["error_response", "handle_flue_error", "handle_unexpected_error"]

logger = logging.getLogger("flue_actors.gateway")


def error_response(error: FlueError, *, dev: bool = False, status: int | None = None) -> Response:
    """``error`` as ``{"error": {type, message, details, dev?, meta?}}`` with its status (errors
    that are not HTTP errors answer 500, as in Flue) and headers."""
    return JSONResponse(
        error.envelope(include_dev=dev),
        status_code=status if status is not None else error.status,
        headers={**SECURITY_HEADERS, **error.headers},
    )


async def handle_flue_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, FlueError)
    return error_response(error, dev=bool(getattr(request.app.state, "dev", False)))


async def handle_unexpected_error(request: Request, error: Exception) -> Response:
    # The caller learns nothing about internals; the server log gets everything.
    logger.exception("unexpected error handling %s %s", request.method, request.url.path)
    return error_response(InternalError())
