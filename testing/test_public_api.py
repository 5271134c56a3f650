"""The public API: a namespace per audience, each ``__all__`` exactly what the namespace holds,
and every exported object showing the public module it is imported from.

Nothing here is a copied list of names: adding a public name means adding it to ``__all__`` (or
it fails as held but not exported), and a module outside ``PUBLIC_MODULES`` must be private.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import get_origin

import pytest

import flue_actors

# Authoring at the top level; then one package per audience (as httpx and temporalio do).
PUBLIC_PACKAGES = (
    "flue_actors",
    "flue_actors.client",
    "flue_actors.errors",
    "flue_actors.gateway",
    "flue_actors.models",
    "flue_actors.otel",  # the `otel` extra
    "flue_actors.sandbox",
    "flue_actors.store",
    "flue_actors.testing",
    "flue_actors.testing.store_contract",  # what a third-party store's tests import
)
# Modules that are run or loaded by name rather than imported for their names.
ENTRY_MODULES = (
    "flue_actors.testing.messages_server",  # python -m flue_actors.testing.messages_server
    "flue_actors.testing.plugin",  # the pytest11 entry point
)


def module_names() -> list[str]:
    root = Path(flue_actors.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = ["flue_actors", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def held(module: ModuleType) -> set[str]:
    """The public names a module's namespace binds, other than modules and what it imported
    from outside flue_actors for its own use (``Path``, ``ClassVar``, ``TYPE_CHECKING``...)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        if name in {"annotations", "TYPE_CHECKING"}:
            continue
        home = getattr(value, "__module__", None)
        ours = not isinstance(home, str) or home == "builtins" or home.startswith("flue_actors")
        # A type alias of ours (a Literal, a union) reports typing as its module.
        if not ours and get_origin(value) is None:
            continue
        names.add(name)
    return names


def test_every_module_outside_the_public_packages_is_private() -> None:
    public = {
        name for name in module_names() if not any(part.startswith("_") for part in name.split("."))
    }
    assert public == set(PUBLIC_PACKAGES) | set(ENTRY_MODULES)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_all_is_what_the_namespace_holds(package: str) -> None:
    module = import_module(package)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is exported twice"
    for name in exported:  # loads the lazily exported names too
        getattr(module, name)
    assert held(module) == set(exported)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_exported_objects_name_a_public_home(package: str) -> None:
    module = import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        home = value.__module__
        assert home in PUBLIC_PACKAGES, f"{package}.{name} shows {home}"
        assert getattr(import_module(home), value.__name__) is value, f"{package}.{name}"


def test_a_name_exported_twice_is_one_object() -> None:
    top = set(flue_actors.__all__)
    for package in PUBLIC_PACKAGES[1:]:
        module = import_module(package)
        for name in top & set(module.__all__):
            assert getattr(module, name) is getattr(flue_actors, name), f"{package}.{name}"
