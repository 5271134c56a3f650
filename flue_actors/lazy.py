"""Names a package exports but loads on first use.

Importing flue_actors (and loading its pytest plugin, which every pytest run in an environment
with the package does) must not pay for dependencies most users of a given process never touch:
asyncpg, httpx, respx, just-bash, the Anthropic SDK, Ray, FastAPI. A package lists such names
with the module that defines them; each stays importable from the package as before, and the
package imports the same names under ``TYPE_CHECKING`` so type checkers see them directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


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
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
