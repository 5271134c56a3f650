"""``FlueClient`` and ``AsyncFlueClient`` are two shells over one protocol (``client/_protocol``):
every public method of one exists on the other with the same parameters, so nothing added to
one client is forgotten in the other (``idempotency_key=`` once was)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from flue_actors.client import AsyncFlueClient, FlueClient

_URL = "http://gateway.test"


def _surface(obj: Any) -> dict[str, list[tuple[str, Any, Any]]]:
    """Each public method's parameters (name, kind, default); the attribute objects of the
    client (``workflows``, ``runs``) are compared method by method in their turn."""
    methods: dict[str, list[tuple[str, Any, Any]]] = {}
    for name, member in inspect.getmembers(type(obj)):
        if name.startswith("_") or not callable(member):
            continue
        parameters = inspect.signature(member).parameters.values()
        methods[name] = [(p.name, p.kind, p.default) for p in parameters]
    return methods


# The methods that exist only in one flavour's idiom.
_IDIOM: dict[str, set[str]] = {"sync": {"close"}, "async": {"aclose"}}


def test_the_clients_offer_the_same_methods_with_the_same_parameters() -> None:
    sync, asynchronous = FlueClient(_URL), AsyncFlueClient(_URL)
    try:
        for attribute in ("workflows", "runs"):
            assert _surface(getattr(sync, attribute)) == _surface(
                getattr(asynchronous, attribute)
            ), attribute
        plain = {k: v for k, v in _surface(sync).items() if k not in _IDIOM["sync"]}
        awaited = {k: v for k, v in _surface(asynchronous).items() if k not in _IDIOM["async"]}
        assert plain == awaited
    finally:
        sync.close()


@pytest.mark.parametrize("attribute", ["workflows", "runs"])
def test_each_method_is_awaitable_exactly_where_the_async_client_does_io(attribute: str) -> None:
    sync, asynchronous = FlueClient(_URL), AsyncFlueClient(_URL)
    try:
        for name in _surface(getattr(sync, attribute)):
            plain = getattr(type(getattr(sync, attribute)), name)
            awaited = getattr(type(getattr(asynchronous, attribute)), name)
            assert not inspect.iscoroutinefunction(plain), name
            # ``runs.stream`` returns an async iterable instead of doing I/O itself.
            assert inspect.iscoroutinefunction(awaited) == (name != "stream"), name
    finally:
        sync.close()
