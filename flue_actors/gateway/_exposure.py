"""A workflow's ``route`` and ``runs`` exports, run as FastAPI dependencies.

Which dependency applies is known only after the workflow (or the run's workflow) is looked up,
so it cannot be declared on the route; it is solved per request with FastAPI's own dependency
machinery, so sub-dependencies, ``Header``/``Query`` parameters and ``HTTPException`` work as
they do on any route. A dependency that is an ``async def`` taking nothing is simply awaited, as
FastAPI would: there is nothing to solve.
"""

# No `from __future__ import annotations`: FastAPI must see the guard's real Annotated type,
# whose Depends names a closure variable a string annotation could not be resolved against.

import inspect
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.utils import get_dependant, solve_dependencies
from fastapi.exceptions import RequestValidationError

__all__ = ["authorize"]

_dependants: dict[tuple[Callable[..., Any], str], Any] = {}
_bare: dict[Callable[..., Any], bool] = {}


def _is_bare(dependency: Callable[..., Any]) -> bool:
    """Whether ``dependency`` is an ``async def`` without parameters (nor ``yield``)."""
    bare = _bare.get(dependency)
    if bare is None:
        bare = _bare[dependency] = inspect.iscoroutinefunction(dependency) and not (
            inspect.signature(dependency).parameters
        )
    return bare


def _guard_for(dependency: Callable[..., Any]) -> Callable[..., None]:
    # The workflow's dependency as a sub-dependency of a no-op: FastAPI then calls it exactly as
    # it would on a route (awaited or in the thread pool, `yield` cleanup included).
    def guard(_: Annotated[Any, Depends(dependency)]) -> None:
        return None

    return guard


async def authorize(request: Request, dependency: Callable[..., Any]) -> None:
    """Run ``dependency`` for ``request``; whatever it raises (``HTTPException``) denies."""
    if _is_bare(dependency):
        await dependency()
        return
    route = request.scope.get("route")
    # The route's template, so a dependency may take the path's parameters (``name``, ``run_id``).
    template = getattr(route, "path_format", request.url.path)
    key = (dependency, template)
    dependant = _dependants.get(key)
    if dependant is None:
        dependant = _dependants[key] = get_dependant(path=template, call=_guard_for(dependency))
    async with AsyncExitStack() as stack:
        solved = await solve_dependencies(
            request=request,
            dependant=dependant,
            async_exit_stack=stack,
            embed_body_fields=False,
        )
        if solved.errors:
            raise RequestValidationError(solved.errors)
