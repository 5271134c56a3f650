"""How the gateway's endpoints sit in FastAPI, with as little per-request work as FastAPI allows.

Every endpoint here takes the ``Request`` and returns a ``Response``: it reads its own path and
query values, because Flue's protocol wants its own error texts for them. FastAPI's request
handler (solving parameters and dependencies, reading a body, serializing a return value) has
nothing to do for such an endpoint, so :class:`DirectRoute` (FastAPI's documented
``route_class`` customization) hands the request to the endpoint itself. Everything around it
stays FastAPI's: routing, exception handlers, middleware, the OpenAPI document. A workflow's
``route``/``runs`` dependency is still solved by FastAPI (``exposure.py``).

The routes are added to the application's own router rather than through ``include_router``,
whose included-router layer re-checks every included router's route list on each request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

__all__ = ["DirectRoute", "add_routes"]


class DirectRoute(APIRoute):
    """An ``APIRoute`` whose endpoint is its own request handler: ``endpoint(request)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        parameters = list(inspect.signature(self.endpoint).parameters.values())
        if (
            not inspect.iscoroutinefunction(self.endpoint)
            or len(parameters) != 1
            or parameters[0].annotation not in (Request, "Request")
        ):
            raise TypeError(f"{self.endpoint.__name__} must be `async def (request: Request)`")
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """``router``'s routes, added to ``app``'s own router in their order."""
    app.router.routes.extend(router.routes)
