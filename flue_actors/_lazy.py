"""How a public package exports names: some loaded on first use, all shown as its own.

Importing flue_actors (and loading its pytest plugin, which every pytest run in an environment
with the package does) must not pay for dependencies most users of a given process never touch:
asyncpg, httpx, respx, just-bash, the Anthropic SDK, Ray, FastAPI. A package lists such names
with the module that defines them; each stays importable from the package as before, and the
package imports the same names under ``TYPE_CHECKING`` so type checkers see them directly.

Every exported class and function is defined in a private module; :func:`publish` (and the
lazy loader) set its ``__module__`` to the public package that exports it, as httpx does, so
reprs, tracebacks, documentation and pickles name ``flue_actors.store.SqliteEventStore`` rather
than a private path that may change. The first public package to export an object claims it, and
packages export their own names before the top level re-exports them.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports", "publish"]


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


# Where each claimed object was defined, before its ``__module__`` named a public package.
_origins: dict[Any, str] = {}


def _claim(value: Any, package: str) -> None:
    """Show ``value`` as ``package``'s, if it is still shown as private or was defined inside
    ``package`` (a package owns what it defines, even if another module re-exported it first,
    as ``errors`` does with the gateway's errors)."""
    home = getattr(value, "__module__", None)
    if not (inspect.isclass(value) or inspect.isfunction(value)) or not isinstance(home, str):
        return
    origin = _origins.get(value, home)
    if not origin.startswith("flue_actors"):
        return
    if _is_private(home) or origin.startswith(package + "."):
        _origins[value] = origin
        value.__module__ = package


def publish(package: str) -> None:
    """Show the names in ``package.__all__`` that are already loaded as ``package``'s own."""
    module = sys.modules[package]
    for name in module.__all__:
        if name in module.__dict__:
            _claim(module.__dict__[name], package)


def lazy_exports(package: str, sources: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``sources`` maps each module (relative to
    ``package``, e.g. ``".client"``) to the lazy names it defines. The first access imports that
    module and caches the value on the package, so later accesses are plain attribute reads."""
    source_of = {name: source for source, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        source = source_of.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(source, package), name)
        _claim(value, package)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
