"""Properties of the gateway, with hypothesis (schemathesis is not installed).

1. Resuming: whatever offset the server handed a reader (the ``Stream-Next-Offset`` of a page
   read at any moment of a run, of a ``tail`` read, or of a HEAD), reading on from it sees every
   later event exactly once, in order.
2. Fuzz: arbitrary methods, query strings, content types and bodies against
   ``/workflows/{name}`` and ``/runs/{runId}`` never answer 5xx (except the documented 500 of a
   failed ``wait=result`` run), every error is Flue's envelope, and no 4xx creates a run.

Each example builds its own runtime and application, so no state leaks between examples.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flue_actors import Runtime
from flue_actors.gateway import create_app

from .conftest import (
    HEARTBEAT_SECONDS,
    LONG_POLL_SECONDS,
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    Controls,
    asgi_client,
    make_runtime,
    offset_of,
    run_ids,
    shutdown,
    start_run,
    wait_for_length,
)


@dataclass
class Gateway:
    runtime: Runtime
    controls: Controls
    app: FastAPI
    client: httpx.AsyncClient


@asynccontextmanager
async def fresh_gateway(*, raise_app_exceptions: bool = True) -> AsyncIterator[Gateway]:
    controls = Controls()
    runtime = make_runtime(controls)
    app = create_app(
        runtime,
        long_poll_seconds=LONG_POLL_SECONDS,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        max_body_bytes=MAX_BODY_BYTES,
    )
    try:
        async with asgi_client(app, raise_app_exceptions=raise_app_exceptions) as client:
            yield Gateway(runtime, controls, app, client)
    finally:
        await shutdown(runtime, controls)


# --- 1. Resuming from any served offset -----------------------------------------------------


@dataclass(frozen=True)
class Served:
    """An offset the server gave, and the events a reader holding it has already seen (those
    up to and including the event it names)."""

    offset: str
    seen: int


async def read_on(client: httpx.AsyncClient, run_id: str, offset: str) -> list[dict[str, Any]]:
    """Catch-up from ``offset`` until ``Stream-Up-To-Date``."""
    events: list[dict[str, Any]] = []
    for _ in range(50):
        response = await client.get(f"/runs/{run_id}", params={"offset": offset})
        assert response.status_code == 200, response.text
        events.extend(response.json())
        if response.headers.get("stream-up-to-date") == "true":
            return events
        offset = response.headers["stream-next-offset"]
    raise AssertionError("never up to date")


bursts = st.lists(st.integers(min_value=1, max_value=15), max_size=8).filter(
    lambda sizes: sum(sizes) <= 60
)
reads = st.sampled_from(["page", "tail", "head", "now", "none"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=bursts,
    plan=st.lists(st.tuples(reads, st.integers(min_value=1, max_value=80)), max_size=9),
)
async def test_a_reader_resumes_from_any_served_offset_exactly_once(
    sizes: list[int], plan: list[tuple[str, int]]
) -> None:
    async with fresh_gateway() as gw:
        client, runtime = gw.client, gw.runtime
        run_id = await start_run(client, "paced")
        await wait_for_length(runtime, run_id, 1)
        length = 1  # events in the stream now (the run waits to be fed between bursts)
        served: list[Served] = [Served("-1", 0)]
        page_reader = Served("-1", 0)  # a reader paging along as the run writes
        tail_pages: list[tuple[int, list[dict[str, Any]]]] = []

        async def read(kind: str, n: int) -> None:
            nonlocal page_reader
            if kind == "page":
                response = await client.get(
                    f"/runs/{run_id}", params={"offset": page_reader.offset}
                )
                got = response.json()
                page_reader = Served(
                    response.headers["stream-next-offset"], page_reader.seen + len(got)
                )
                served.append(page_reader)
            elif kind == "tail":
                response = await client.get(f"/runs/{run_id}", params={"tail": str(n)})
                tail_pages.append((length, response.json()))
                served.append(Served(response.headers["stream-next-offset"], length))
            elif kind == "head":
                response = await client.head(f"/runs/{run_id}")
                served.append(Served(response.headers["stream-next-offset"], length))
            elif kind == "now":
                response = await client.get(f"/runs/{run_id}", params={"offset": "now"})
                assert response.json() == []
                served.append(Served(response.headers["stream-next-offset"], length))

        steps = iter(plan)
        for burst, size in enumerate(sizes):
            for line in range(size):
                gw.controls.feed.put_nowait(f"burst {burst} line {line}")
            length += size
            await wait_for_length(runtime, run_id, length)
            for kind, n in [next(steps, ("none", 0)), next(steps, ("none", 0))]:
                await read(kind, n)
        gw.controls.feed.put_nowait(None)
        await runtime.wait(run_id, timeout=5)
        length += 1
        for kind, n in steps:
            await read(kind, n)

        every = await read_on(client, run_id, "-1")
        assert len(every) == length == sum(sizes) + 2
        assert [event["eventIndex"] for event in every] == list(range(length))
        assert every[-1]["type"] == "run_end"
        for length_then, page in tail_pages:
            n = len(page)
            assert page == every[length_then - n : length_then]
        for position in served:
            resumed = await read_on(client, run_id, position.offset)
            assert resumed == every[position.seen :], position


# --- 2. Fuzz --------------------------------------------------------------------------------

WORKFLOW_NAMES = [
    "summarize",
    "echo",
    "none",
    "logger",
    "failing",
    "typed_fail",
    "routed",
    "readable",
    "hidden",
    "guarded",
    "private",
    "counted",
]
LIVE_WORKFLOWS = {"blocking", "paced"}  # they wait for the test: never invoked by the fuzz
FAILING = {"failing", "typed_fail"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SEEDED = ["none", "failing", "routed", "private", "counted"]  # run ids 1..5, all finished

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
offsets = st.sampled_from(["-1", "now", offset_of(0), offset_of(1), offset_of(500), "0_1"])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
inputs = st.one_of(
    st.fixed_dictionaries({"text": text}),
    st.fixed_dictionaries({"count": st.integers(min_value=-5, max_value=30)}),
    st.dictionaries(st.sampled_from(["text", "count", "x"]), json_values, max_size=3),
    json_values,
)
bodies = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=40),
    inputs.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"NaN", b'{"text": Infinity}', b"1e999", b'{"text": 1e999}', b"{", b" "]),
    st.sampled_from([b"[" * 5000, b'{"text":"' + b"x" * 5000 + b'"}']),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "", "*/*"]
    ),
    ascii_text,
)
query_keys = st.one_of(
    st.sampled_from(["wait", "offset", "tail", "live", "cursor", "meta", "workflow"]), text
)
query_values = st.one_of(
    st.sampled_from(["result", "long-poll", "sse", "1", "0", "", "-5", "abc"]), offsets, text
)


def mostly(likely: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``likely`` four times out of five, so most requests get past routing."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda i: other if i == 0 else likely)


@st.composite
def request_extras(draw: st.DrawFn) -> dict[str, Any]:
    """Query string, headers and body: the same vocabulary for both routes."""
    query = draw(st.lists(st.tuples(query_keys, query_values), max_size=4))
    headers: dict[str, str] = {}
    content_type = draw(content_types)
    if content_type is not None:
        headers["content-type"] = content_type
    for header, values in (
        ("x-allow", st.sampled_from(["yes", "no"])),
        ("traceparent", ascii_text),
        ("if-none-match", ascii_text),
    ):
        if draw(st.booleans()):
            headers[header] = draw(values)
    return {"query": query, "headers": headers, "content": draw(bodies)}


def build(method: str, path: str, extras: dict[str, Any]) -> dict[str, Any]:
    query = extras["query"]
    return {
        "method": method,
        "url": f"{path}?{urlencode(query)}" if query else path,
        "headers": extras["headers"],
        "content": extras["content"],
    }


@st.composite
def workflow_requests(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(mostly(st.just("POST"), st.sampled_from(METHODS)))
    name = draw(
        mostly(st.sampled_from(WORKFLOW_NAMES), text.filter(lambda n: n not in LIVE_WORKFLOWS))
    )
    extras = draw(request_extras())
    if method == "POST" and draw(st.booleans()):  # often a plain ?wait=result
        extras["query"] = [("wait", "result"), *extras["query"][:1]]
    return build(method, f"/workflows/{quote(name, safe='')}", extras)


@st.composite
def run_requests(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(mostly(st.sampled_from(["GET", "HEAD"]), st.sampled_from(METHODS)))
    seeded = st.sampled_from([f"run_{n:026d}" for n in range(1, len(SEEDED) + 1)])
    run_id = draw(mostly(seeded, st.sampled_from(["run_" + "Z" * 26, "run_", "x"]) | text))
    return build(method, f"/runs/{quote(run_id, safe='')}", draw(request_extras()))


def is_documented_500(request: dict[str, Any], response: httpx.Response) -> bool:
    """A failed ``wait=result`` run: POST to a failing workflow, exactly ``wait=result``."""
    url = httpx.URL(request["url"])
    name = url.path.removeprefix("/workflows/")
    return (
        request["method"] == "POST"
        and name in FAILING
        and url.params.get_list("wait") == ["result"]
        and response.status_code == 500
        and response.json()["error"]["meta"]["runId"].startswith("run_")
    )


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def check_fuzzed(request: dict[str, Any]) -> None:
    async with fresh_gateway(raise_app_exceptions=False) as gw:
        for name in SEEDED:
            await gw.runtime.wait((await gw.runtime.invoke(name)).run_id, timeout=5)
        before = await run_ids(gw.runtime)

        response = await gw.client.request(**request)

        after = await run_ids(gw.runtime)
        status = response.status_code
        event(f"{request['method']} {status}")  # see --hypothesis-show-statistics
        assert status < 500 or is_documented_500(request, response), (status, response.text)
        if 400 <= status < 500:
            assert after == before, (status, response.text)
        elif status in (200, 202) and request["url"].startswith("/workflows/"):
            assert len(after) == len(before) + 1
        elif status < 500:
            assert after == before
        if status >= 400 and request["method"] != "HEAD" and status != 403:
            # Every error the gateway itself answers is Flue's envelope with its headers.
            assert response.headers.get("content-type") == "application/json", (status,)
            for header, value in SECURITY_HEADERS.items():
                assert response.headers.get(header) == value, (status, dict(response.headers))
            assert set(response.json()) == {"error"}, response.text


@FUZZ
@given(request=workflow_requests())
async def test_fuzzed_invocations_never_5xx_and_4xx_create_no_run(
    request: dict[str, Any],
) -> None:
    await check_fuzzed(request)


@FUZZ
@given(request=run_requests())
async def test_fuzzed_run_reads_never_5xx_and_create_no_run(request: dict[str, Any]) -> None:
    await check_fuzzed(request)
