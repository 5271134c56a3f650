"""Hand-made bad requests against a real server: each is a 4xx with Flue's envelope, never a 5xx,
never a hang, and none creates a run (issue 9, "any bytes in, no damage").

Requests are written as raw bytes on a socket to a uvicorn server on 127.0.0.1, so that what an
HTTP client would normalize or refuse to send (invalid UTF-8 in the query, a NUL, a newline in an
offset, superscript and Arabic-Indic digits) reaches the server as a hostile client sends it. The
few that uvicorn's HTTP parser itself refuses never reach the application; they must still get a
4xx, though not Flue's envelope (``PARSER``). Every exchange has a 5 s bound.

The table also holds the values that are *accepted* where Flue accepts them (a tail longer than
any stream, a limit past the maximum, an undecodable listing cursor, offsets with leading
zeros): those must answer 2xx, not an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from flue_actors import ActionContext, Runtime, define_agent, define_workflow
from flue_actors._jsonvalue import MAX_DEPTH
from flue_actors._runtime import DiscoveredWorkflow
from flue_actors.gateway import create_app

from .conftest import (
    HEARTBEAT_SECONDS,
    LONG_POLL_SECONDS,
    SECURITY_HEADERS,
    Controls,
    make_runtime,
    run_ids,
    shutdown,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# A bound that tells a hung exchange from a slow one: a 200,000-deep body takes a second or
# two to refuse on a loaded 2-core machine, a hang never ends.
EXCHANGE_SECONDS: Final = 30.0
PARSER: Final = "parser"  # refused by the HTTP parser, before the application: any 4xx
RUN: Final = "{run}"  # replaced by the id of a completed run of ``echo``


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Server:
    runtime: Runtime
    app: FastAPI
    port: int
    run_id: str


async def exchange(port: int, request: bytes) -> RawResponse:
    """Send ``request`` as it is on a new connection and read the whole answer (the request asks
    the server to close), within :data:`EXCHANGE_SECONDS`."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), EXCHANGE_SECONDS
    )
    try:
        writer.write(request)
        await writer.drain()
        try:
            data = await asyncio.wait_for(reader.read(), EXCHANGE_SECONDS)
        except TimeoutError:
            raise AssertionError(f"no complete answer within {EXCHANGE_SECONDS} s") from None
    finally:
        writer.close()
    assert data, "the server closed the connection without answering"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return RawResponse(int(lines[0].split(" ")[1]), headers, body)


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


def http(
    method: str,
    target: bytes | str,
    *,
    body: bytes | None = None,
    headers: dict[str, bytes | str] | None = None,
    json_body: bool = True,
) -> bytes:
    """A raw HTTP/1.1 request. A body gets ``content-type: application/json`` unless
    ``json_body`` is false, and its length unless ``headers`` give one."""
    target_bytes = target.encode("latin-1") if isinstance(target, str) else target
    fields: dict[str, bytes | str] = {"host": "127.0.0.1", "connection": "close"}
    if body is not None:
        if json_body:
            fields["content-type"] = "application/json"
        fields["content-length"] = str(len(body))
    fields.update(headers or {})
    lines = [method.encode() + b" " + target_bytes + b" HTTP/1.1"]
    for name, value in fields.items():
        raw = value.encode("latin-1") if isinstance(value, str) else value
        lines.append(name.encode() + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def nested(depth: int, *, kind: str = "array") -> bytes:
    """``{"text": "x", "deep": V}`` where the whole document nests ``depth`` levels."""
    inner = depth - 1
    if kind == "array":
        value = b"[" * inner + b"]" * inner
    else:
        value = b'{"a":' * inner + b"1" + b"}" * inner
    return b'{"text":"x","deep":' + value + b"}"


def cursor_of(value: Any) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


DIGITS_5000: Final = "9" * 5000
BIG: Final = "99999999999999999999"  # 20 digits: past 2^63

# (id, request, expected status, expected error type or PARSER or None for a success)
CASES: Final[list[tuple[str, bytes, int, str | None]]] = [
    # --- offsets ---------------------------------------------------------------------------
    ("offset letters", http("GET", f"/runs/{RUN}?offset=abc"), 400, "invalid_request"),
    ("offset trailing LF", http("GET", f"/runs/{RUN}?offset=0_1%0A"), 400, "invalid_request"),
    ("offset trailing CRLF", http("GET", f"/runs/{RUN}?offset=0_1%0D%0A"), 400, "invalid_request"),
    ("offset LF only", http("GET", f"/runs/{RUN}?offset=%0A"), 400, "invalid_request"),
    ("offset NUL", http("GET", f"/runs/{RUN}?offset=0_1%00"), 400, "invalid_request"),
    ("offset leading space", http("GET", f"/runs/{RUN}?offset=%200_1"), 400, "invalid_request"),
    ("offset past 2^63", http("GET", f"/runs/{RUN}?offset=0_{BIG}"), 400, "invalid_request"),
    (
        "offset of 5000 digits",
        http("GET", f"/runs/{RUN}?offset=0_{DIGITS_5000}"),
        400,
        "invalid_request",
    ),
    (
        "offset Arabic-Indic digits",
        http("GET", f"/runs/{RUN}?offset=%D9%A0_%D9%A1"),
        400,
        "invalid_request",
    ),
    ("offset superscript", http("GET", f"/runs/{RUN}?offset=0_%C2%B2"), 400, "invalid_request"),
    (
        "offset fullwidth digits",
        http("GET", f"/runs/{RUN}?offset=%EF%BC%90_%EF%BC%91"),
        400,
        "invalid_request",
    ),
    ("offset underscore digits", http("GET", f"/runs/{RUN}?offset=0_1_0"), 400, "invalid_request"),
    ("offset -2", http("GET", f"/runs/{RUN}?offset=-2"), 400, "invalid_request"),
    ("offset hex", http("GET", f"/runs/{RUN}?offset=0x1_1"), 400, "invalid_request"),
    ("offset empty", http("GET", f"/runs/{RUN}?offset="), 400, "invalid_request"),
    ("offset now LF", http("GET", f"/runs/{RUN}?offset=now%0A"), 400, "invalid_request"),
    ("offset -1 LF", http("GET", f"/runs/{RUN}?offset=-1%0A"), 400, "invalid_request"),
    (
        "offset lone surrogate bytes",
        http("GET", f"/runs/{RUN}?offset=%ED%A0%80"),
        400,
        "invalid_request",
    ),
    ("offset invalid UTF-8", http("GET", f"/runs/{RUN}?offset=%FF%FE"), 400, "invalid_request"),
    ("offset raw bytes", http("GET", f"/runs/{RUN}?offset=\xd9\xa0_1"), 400, PARSER),
    ("offset twice", http("GET", f"/runs/{RUN}?offset=-1&offset=-1"), 400, "invalid_request"),
    ("offset leading zeros", http("GET", f"/runs/{RUN}?offset=0_{'0' * 40}1"), 200, None),
    ("offset long first part", http("GET", f"/runs/{RUN}?offset={BIG}_0"), 200, None),
    # --- tail ------------------------------------------------------------------------------
    ("tail 0", http("GET", f"/runs/{RUN}?tail=0"), 400, "invalid_request"),
    ("tail -1", http("GET", f"/runs/{RUN}?tail=-1"), 400, "invalid_request"),
    ("tail leading zero", http("GET", f"/runs/{RUN}?tail=01"), 400, "invalid_request"),
    ("tail superscript", http("GET", f"/runs/{RUN}?tail=%C2%B2"), 400, "invalid_request"),
    ("tail Arabic-Indic", http("GET", f"/runs/{RUN}?tail=%D9%A1"), 400, "invalid_request"),
    ("tail trailing LF", http("GET", f"/runs/{RUN}?tail=1%0A"), 400, "invalid_request"),
    ("tail decimal", http("GET", f"/runs/{RUN}?tail=1.0"), 400, "invalid_request"),
    ("tail twice", http("GET", f"/runs/{RUN}?tail=1&tail=2"), 400, "invalid_request"),
    ("tail of 5000 digits", http("GET", f"/runs/{RUN}?tail={DIGITS_5000}"), 200, None),
    # --- live and cursor -------------------------------------------------------------------
    ("live unknown", http("GET", f"/runs/{RUN}?offset=-1&live=foo"), 400, "invalid_request"),
    ("live NUL", http("GET", f"/runs/{RUN}?offset=-1&live=%00"), 400, "invalid_request"),
    ("live sse, no offset", http("GET", f"/runs/{RUN}?live=sse"), 400, "invalid_request"),
    (
        "long-poll past 2^63",
        http("GET", f"/runs/{RUN}?offset=0_{BIG}&live=long-poll"),
        400,
        "invalid_request",
    ),
    (
        "sse of 5000 digits",
        http("GET", f"/runs/{RUN}?offset=0_{DIGITS_5000}&live=sse"),
        400,
        "invalid_request",
    ),
    (
        "cursor superscript",
        http("GET", f"/runs/{RUN}?offset=now&live=long-poll&cursor=%C2%B2"),
        204,
        None,
    ),
    (
        "cursor Arabic-Indic",
        http("GET", f"/runs/{RUN}?offset=now&live=long-poll&cursor=%D9%A1%D9%A2"),
        204,
        None,
    ),
    (
        "cursor of 5000 digits",
        http("GET", f"/runs/{RUN}?offset=now&live=long-poll&cursor={DIGITS_5000}"),
        204,
        None,
    ),
    ("cursor negative", http("GET", f"/runs/{RUN}?offset=now&live=long-poll&cursor=-5"), 204, None),
    ("meta lone surrogate bytes", http("GET", f"/runs/{RUN}?meta=%ED%A0%80"), 200, None),
    # --- run ids ---------------------------------------------------------------------------
    ("run id NUL", http("GET", "/runs/%00"), 404, "run_not_found"),
    ("run id invalid UTF-8", http("GET", "/runs/run_%ED%A0%80%FF"), 404, "run_not_found"),
    ("run id trailing LF", http("GET", f"/runs/{RUN}%0A"), 404, "run_not_found"),
    ("run id 5000 chars", http("GET", "/runs/" + "r" * 5000), 404, "run_not_found"),
    ("cancel NUL run", http("POST", "/runs/%00/cancel"), 404, "run_not_found"),
    ("cancel ended run", http("POST", f"/runs/{RUN}/cancel", body=b"\xff"), 409, "run_not_active"),
    # --- listing ---------------------------------------------------------------------------
    ("limit superscript", http("GET", "/runs?workflow=echo&limit=%C2%B2"), 400, "invalid_request"),
    ("limit Arabic-Indic", http("GET", "/runs?workflow=echo&limit=%D9%A1"), 400, "invalid_request"),
    ("limit negative", http("GET", "/runs?workflow=echo&limit=-1"), 400, "invalid_request"),
    ("limit decimal", http("GET", "/runs?workflow=echo&limit=1.5"), 400, "invalid_request"),
    ("limit trailing LF", http("GET", "/runs?workflow=echo&limit=1%0A"), 400, "invalid_request"),
    ("limit empty", http("GET", "/runs?workflow=echo&limit="), 400, "invalid_request"),
    ("limit of 5000 digits", http("GET", f"/runs?workflow=echo&limit={DIGITS_5000}"), 200, None),
    ("limit zero", http("GET", "/runs?workflow=echo&limit=0"), 200, None),
    ("status unknown", http("GET", "/runs?workflow=echo&status=bogus"), 400, "invalid_request"),
    ("status NUL", http("GET", "/runs?workflow=echo&status=%00"), 400, "invalid_request"),
    ("workflow NUL", http("GET", "/runs?workflow=%00"), 404, "workflow_not_found"),
    ("workflow invalid UTF-8", http("GET", "/runs?workflow=%ED%A0%80"), 404, "workflow_not_found"),
    ("list cursor garbage", http("GET", "/runs?workflow=echo&cursor=%%%"), 200, None),
    ("list cursor invalid UTF-8", http("GET", "/runs?workflow=echo&cursor=%FF"), 200, None),
    (
        "list cursor lone surrogate",
        http("GET", "/runs?workflow=echo&cursor=" + cursor_of({"s": "\ud800", "r": "x"})),
        200,
        None,
    ),
    (
        "list cursor NUL",
        http("GET", "/runs?workflow=echo&cursor=" + cursor_of({"s": "\x00", "r": "\x00"})),
        200,
        None,
    ),
    (
        "list cursor deep",
        http("GET", "/runs?workflow=echo&cursor=" + cursor_of(json.loads("[" * 900 + "]" * 900))),
        200,
        None,
    ),
    ("list cursor 9000 chars", http("GET", "/runs?workflow=echo&cursor=" + "A" * 9000), 200, None),
    # --- invocation: query and path --------------------------------------------------------
    ("wait capitalized", http("POST", "/workflows/echo?wait=Result"), 400, "invalid_request"),
    ("wait twice", http("POST", "/workflows/echo?wait=result&wait=result"), 400, "invalid_request"),
    ("wait NUL", http("POST", "/workflows/echo?wait=%00"), 400, "invalid_request"),
    ("wait invalid UTF-8", http("POST", "/workflows/echo?wait=%ED%A0%80"), 400, "invalid_request"),
    ("workflow blank", http("POST", "/workflows/%20"), 400, "invalid_request"),
    ("workflow NUL", http("POST", "/workflows/%00"), 404, "workflow_not_found"),
    ("workflow invalid UTF-8", http("POST", "/workflows/%ED%A0%80"), 404, "workflow_not_found"),
    ("workflow 5000 chars", http("POST", "/workflows/" + "w" * 5000), 404, "workflow_not_found"),
    ("unknown route", http("GET", "/%ED%A0%80"), 404, "route_not_found"),
    ("PUT on a run", http("PUT", f"/runs/{RUN}", body=b"\xff"), 405, "method_not_allowed"),
    ("unknown method", http("BREW", f"/runs/{RUN}"), 400, PARSER),
    # --- invocation: content types and bodies ----------------------------------------------
    (
        "text/plain body",
        http("POST", "/workflows/echo", body=b"{}", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    (
        "non-ASCII content type",
        http(
            "POST", "/workflows/echo", body=b"{}", headers={"content-type": b"appl\xc3\xadcation"}
        ),
        415,
        "unsupported_media_type",
    ),
    ("body not JSON", http("POST", "/workflows/echo", body=b"{"), 400, "invalid_json"),
    (
        "body invalid UTF-8",
        http("POST", "/workflows/echo", body=b'{"text":"\xff"}'),
        400,
        "invalid_json",
    ),
    (
        "body surrogate as UTF-8 bytes",
        http("POST", "/workflows/echo", body=b'{"text":"\xed\xa0\x80"}'),
        400,
        "invalid_json",
    ),
    (
        "body raw NUL",
        http("POST", "/workflows/echo", body=b'{"text":"a\x00"}'),
        400,
        "invalid_json",
    ),
    (
        "body UTF-8 BOM",
        http("POST", "/workflows/echo", body=b'\xef\xbb\xbf{"text":"x"}'),
        400,
        None,
    ),
    (
        "body UTF-16",
        http("POST", "/workflows/echo", body='{"text":"x"}'.encode("utf-16")),
        400,
        None,
    ),
    ("body NaN", http("POST", "/workflows/echo", body=b'{"text":NaN}'), 400, "invalid_json"),
    ("body 1e999", http("POST", "/workflows/echo", body=b'{"text":1e999}'), 400, "invalid_json"),
    (
        "body 5000-digit number",
        http("POST", "/workflows/echo", body=b'{"text":' + DIGITS_5000.encode() + b"}"),
        400,
        "invalid_json",
    ),
    (
        "body lone surrogate key",
        http("POST", "/workflows/echo", body=b'{"\\ud800":1}'),
        422,
        "action_input_validation",
    ),
    (
        "body lone surrogate in a list",
        http("POST", "/workflows/echo", body=b'["\\udfff"]'),
        422,
        "action_input_validation",
    ),
    (
        "body to a workflow without input",
        http("POST", "/workflows/none", body=b'"\\ud800"'),
        422,
        "workflow_input_unexpected",
    ),
    (
        f"body nested {MAX_DEPTH + 1} deep",
        http("POST", "/workflows/echo", body=nested(MAX_DEPTH + 1)),
        400,
        "invalid_json",
    ),
    (
        "body nested 500 deep",
        http("POST", "/workflows/echo", body=nested(500)),
        400,
        "invalid_json",
    ),
    (
        "body nested 900 deep",
        http("POST", "/workflows/echo", body=nested(900)),
        400,
        "invalid_json",
    ),
    (
        "objects nested 900 deep",
        http("POST", "/workflows/echo", body=nested(900, kind="object")),
        400,
        "invalid_json",
    ),
    (
        "body nested 200000 deep",
        http("POST", "/workflows/echo", body=nested(200_000)),
        400,
        "invalid_json",
    ),
    (
        "unbalanced 100000 deep",
        http("POST", "/workflows/echo", body=b"[" * 100_000),
        400,
        "invalid_json",
    ),
    (
        "declared length huge",
        http("POST", "/workflows/echo", headers={"content-length": "9" * 15}),
        413,
        "payload_too_large",
    ),
    (
        "declared length past 2^64",
        http("POST", "/workflows/echo", headers={"content-length": "9" * 30}),
        400,
        PARSER,
    ),
    (
        "declared length superscript",
        http("POST", "/workflows/echo", headers={"content-length": "\xb2"}),
        400,
        PARSER,
    ),
    (
        "bad chunk size",
        http(
            "POST",
            "/workflows/echo",
            headers={"transfer-encoding": "chunked", "content-type": "application/json"},
        )
        + b"zz\r\n{}\r\n0\r\n\r\n",
        400,
        PARSER,
    ),
    ("raw NUL in target", http("GET", f"/runs/{RUN}?offset=\x00"), 400, PARSER),
    ("raw space in target", http("GET", f"/runs/{RUN}?offset=0 1"), 400, PARSER),
    # --- accepted: nesting at the bound, brackets in strings, escapes ------------------------
    (
        f"body nested {MAX_DEPTH} deep",
        http("POST", "/workflows/echo", body=nested(MAX_DEPTH)),
        202,
        None,
    ),
    (
        "brackets inside a string",
        http("POST", "/workflows/echo", body=b'{"text":"' + b"[{" * 2000 + b'"}'),
        202,
        None,
    ),
    (
        "lone surrogate escape",
        http("POST", "/workflows/echo", body=b'{"text":"\\ud800"}'),
        202,
        None,
    ),
    ("NUL escape", http("POST", "/workflows/echo", body=b'{"text":"\\u0000"}'), 202, None),
]


async def explode() -> None:
    raise RuntimeError("an unexpected failure in a route dependency")


async def never_runs(ctx: ActionContext[None]) -> None:
    raise AssertionError("the route dependency refuses every request")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    """One runtime and one uvicorn server on 127.0.0.1 for the whole table, with a 1 MiB body
    limit (so that deep bodies are parsed, not refused for their size). ``log_config=None``
    leaves uvicorn's loggers propagating, so a test sees what uvicorn logs too."""
    controls = Controls()
    runtime = make_runtime(controls)
    exploding = define_workflow(agent=define_agent(model="fake/echo"), run=never_runs)
    runtime.workflows.register(DiscoveredWorkflow("exploding", exploding, route=explode))
    app = create_app(
        runtime,
        long_poll_seconds=LONG_POLL_SECONDS,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        max_body_bytes=1 << 20,
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, lifespan="off", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    deadline = time.monotonic() + 10
    while not uv.started:
        assert not task.done(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        await asyncio.sleep(0.005)
    port = uv.servers[0].sockets[0].getsockname()[1]
    receipt = await runtime.invoke("echo", {"text": "hello"})
    await runtime.wait(receipt.run_id, timeout=5)
    try:
        yield Server(runtime, app, port, receipt.run_id)
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        await shutdown(runtime, controls)


@pytest.mark.parametrize(
    ("request_bytes", "status", "error_type"),
    [pytest.param(request, status, kind, id=name) for name, request, status, kind in CASES],
)
async def test_bad_request_is_a_4xx_envelope_never_a_5xx_or_a_hang(
    server: Server, request_bytes: bytes, status: int, error_type: str | None
) -> None:
    before = await run_ids(server.runtime)
    response = await exchange(
        server.port, request_bytes.replace(RUN.encode(), server.run_id.encode())
    )
    after = await run_ids(server.runtime)
    assert response.status == status, (response.status, response.body[:500])
    if status == 202:
        assert len(after) == len(before) + 1
        await server.runtime.wait(json.loads(response.body)["runId"], timeout=5)
        return
    assert after == before, "a refused request created a run"
    if error_type is None or error_type == PARSER:
        return
    assert response.headers.get("content-type") == "application/json", response.headers
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    body = json.loads(response.body)
    assert list(body) == ["error"], body
    assert body["error"]["type"] == error_type, body
    assert body["error"]["message"], body
    assert isinstance(body["error"]["details"], str), body


async def test_an_unexpected_error_is_one_500_envelope_logged_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await exchange(server.port, http("POST", "/workflows/exploding"))
    assert response.status == 500, response.body
    error = json.loads(response.body)["error"]
    assert error["type"] == "internal_error", error
    assert "unexpected failure" not in response.body.decode(), "internals leaked to the caller"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].exc_info is not None, "the traceback is logged with the line"
    assert errors[0].getMessage() == "unexpected error handling POST /workflows/exploding"
