"""``POST /workflows/{name}``: every status and body (reference 1.8, 1.17, 1.23).

Deliberate deviations from Flue asserted here: schema-invalid input is 422
``action_input_validation`` and input to a workflow without an input schema 422
``workflow_input_unexpected``, both with no run created; a failed ``wait=result`` run answers 500
with the error's type and ``meta.runId``; bodies over ``max_body_bytes`` get 413
``payload_too_large`` before they are parsed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flue_actors import Runtime

from .conftest import (
    AppFactory,
    Controls,
    asgi_client,
    assert_error,
    assert_security_headers,
    run_ids,
)

RUN_ID = re.compile(r"^run_[0-9A-HJKMNP-TV-Z]{26}$")
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
METHOD_DETAILS = 'This endpoint accepts "POST" only.'
NOT_FOUND_DETAILS = "Verify the workflow name is correct."
JSON_DETAILS_TAIL = (
    "\nVerify the body is well-formed JSON, or omit the body entirely if the request doesn't "
    "have a payload."
)
MEDIA_DETAILS_TAIL = (
    '\nSend the request body as JSON with the header "Content-Type: application/json", or omit '
    "the body entirely (and the Content-Type header) if the request doesn't have a payload."
)
INPUT_SCHEMA_MESSAGE = 'Action "workflow" input does not match the required schema.'


async def meta_of(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/runs/{run_id}?meta")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


# --- 202 and 200 ----------------------------------------------------------------------------


async def test_detached_invocation_answers_202_with_only_the_run_id(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/workflows/echo", json={"text": "hi"})

    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["runId"]
    assert RUN_ID.match(body["runId"])
    assert "location" not in response.headers
    assert "stream-next-offset" not in response.headers
    record = await runtime.wait(body["runId"], timeout=5)
    assert record.status == "completed"
    assert record.result == {"text": "hi"}
    assert record.input == {"text": "hi"}
    assert await run_ids(runtime) == [body["runId"]]


async def test_wait_result_answers_200_with_result_and_run_id_after_the_run_ended(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/workflows/echo?wait=result", json={"text": "hi"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {"result": {"text": "hi"}, "runId": body["runId"]}
    assert RUN_ID.match(body["runId"])
    record = await runtime.get_run(body["runId"])
    assert record is not None
    assert record.status == "completed"
    events = await runtime.events(body["runId"])
    assert events[-1]["type"] == "run_end"


async def test_wait_result_of_a_discovered_workflow_that_prompts_the_model(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/workflows/summarize?wait=result", json={"text": "hello world"})

    assert response.status_code == 200
    body = response.json()
    assert body == {"result": {"summary": "hello world"}, "runId": body["runId"]}


async def test_wait_result_of_a_workflow_returning_none_has_result_null(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/workflows/none?wait=result")

    assert response.status_code == 200
    body = response.json()
    assert body == {"result": None, "runId": body["runId"]}


# --- 400 invalid_request: the wait parameter, before anything else --------------------------


@pytest.mark.parametrize(
    "query", ["wait=other", "wait=", "wait=RESULT", "wait=result&wait=result", "wait=true"]
)
@pytest.mark.parametrize("name", ["echo", "nope", "hidden", "counted"])
async def test_wait_other_than_result_is_invalid_request_before_the_name_lookup(
    client: httpx.AsyncClient, runtime: Runtime, controls: Controls, query: str, name: str
) -> None:
    response = await client.post(
        f"/workflows/{name}?{query}",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )

    error = assert_error(response, 400, "invalid_request", message="Request is malformed.")
    assert error["details"].startswith("Invalid query parameters: "), error
    assert controls.route_calls == []  # refused before the route dependency
    assert await run_ids(runtime) == []


# --- 405 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("name", ["echo", "nope", "hidden", "counted"])
async def test_other_methods_are_405_allow_post_even_for_unknown_names(
    client: httpx.AsyncClient, controls: Controls, method: str, name: str
) -> None:
    response = await client.request(method, f"/workflows/{name}?wait=other")

    assert_error(
        response,
        405,
        "method_not_allowed",
        message=f"HTTP method {method} is not allowed on this endpoint.",
        details=METHOD_DETAILS,
    )
    assert response.headers["allow"] == "POST"
    assert controls.route_calls == []


async def test_head_is_405_allow_post_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/workflows/echo")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert_security_headers(response)
    assert response.content == b""


# --- 404 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "hidden", "readable", "Echo"])
async def test_unknown_and_route_less_workflows_get_the_same_404(
    client: httpx.AsyncClient, runtime: Runtime, name: str
) -> None:
    response = await client.post(f"/workflows/{name}", json={"text": "hi"})

    error = assert_error(
        response,
        404,
        "workflow_not_found",
        message=f'Workflow "{name}" is not registered.',
        details=NOT_FOUND_DETAILS,
    )
    assert set(error) == {"type", "message", "details"}
    assert await run_ids(runtime) == []


async def test_404_bodies_and_headers_do_not_reveal_route_less_workflows(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.post("/workflows/nope?wait=result")
    hidden = await client.post("/workflows/hidden?wait=result")
    runs_only = await client.post("/workflows/readable?wait=result")

    def anonymous(response: httpx.Response, name: str) -> tuple[str, dict[str, str]]:
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return response.text.replace(f'\\"{name}\\"', '\\"?\\"'), headers

    assert anonymous(unknown, "nope") == anonymous(hidden, "hidden")
    assert anonymous(unknown, "nope") == anonymous(runs_only, "readable")


async def test_name_lookup_comes_before_body_checks(client: httpx.AsyncClient) -> None:
    malformed = await client.post(
        "/workflows/hidden", content=b"{", headers={"content-type": "application/json"}
    )
    text = await client.post(
        "/workflows/nope", content=b"hello", headers={"content-type": "text/plain"}
    )

    assert_error(malformed, 404, "workflow_not_found")
    assert_error(text, 404, "workflow_not_found")


async def test_a_blank_name_is_invalid_request(client: httpx.AsyncClient) -> None:
    # Flue's validateWorkflowRequest: a whitespace-only segment is 400, not a lookup.
    response = await client.post("/workflows/%20")

    assert_error(
        response,
        400,
        "invalid_request",
        message="Request is malformed.",
        details="Workflow URLs must have the shape /workflows/<name> with a non-empty segment.",
    )


# --- Bodies: 415, 400 invalid_json, empty = no input ----------------------------------------


@pytest.mark.parametrize(
    ("content_type", "first_line"),
    [
        ("text/plain", 'Received Content-Type: "text/plain".'),
        (
            "application/x-www-form-urlencoded",
            'Received Content-Type: "application/x-www-form-urlencoded".',
        ),
        (None, "No Content-Type header was sent."),
    ],
)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, runtime: Runtime, content_type: str | None, first_line: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/workflows/echo", content=b'{"text":"hi"}', headers=headers)

    assert_error(
        response,
        415,
        "unsupported_media_type",
        message="Request body must be sent as application/json.",
        details=first_line + MEDIA_DETAILS_TAIL,
    )
    assert await run_ids(runtime) == []


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/json", "application/json; charset=utf-8"]
)
async def test_an_empty_body_is_no_input(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/workflows/none?wait=result", content=b"", headers=headers)

    assert response.status_code == 200, response.text
    record = await meta_of(client, response.json()["runId"])
    assert "input" not in record


async def test_a_whitespace_only_json_body_is_no_input(client: httpx.AsyncClient) -> None:
    # Flue's parseJsonBody: `if (text.trim() === '') return undefined;`
    response = await client.post(
        "/workflows/none?wait=result",
        content=b"  \n\t ",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert "input" not in await meta_of(client, response.json()["runId"])


async def test_a_charset_parameter_still_means_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/workflows/echo?wait=result",
        content='{"text":"héllo"}'.encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"text": "héllo"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"text":',
        b"{'text': 'hi'}",
        b'{"text": "hi",}',
        b"NaN",
        b'{"text": NaN}',
        b"Infinity",
        b"-Infinity",
        b'{"text": "hi", "n": Infinity}',
        b"\xff\xfe\x00",
        b"[1, 2",
    ],
    ids=repr,
)
async def test_malformed_json_and_non_finite_literals_are_400_invalid_json(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes
) -> None:
    response = await client.post(
        "/workflows/echo?wait=result", content=body, headers={"content-type": "application/json"}
    )

    error = assert_error(response, 400, "invalid_json", message="Request body is not valid JSON.")
    assert error["details"].startswith("The JSON parser reported: "), error
    assert await run_ids(runtime) == []


async def test_invalid_json_details_end_with_flues_guidance(client: httpx.AsyncClient) -> None:
    # The parser's own words differ between languages; the guidance line is Flue's.
    response = await client.post(
        "/workflows/echo", content=b"{", headers={"content-type": "application/json"}
    )

    error = assert_error(response, 400, "invalid_json")
    assert error["details"].endswith(JSON_DETAILS_TAIL), error


# --- 422: input refused with no run created (deviation) -------------------------------------


@pytest.mark.parametrize(
    ("body", "issues"),
    [
        ({}, [{"message": "Field required", "path": ["text"]}]),
        ({"text": 5}, [{"message": "Input should be a valid string", "path": ["text"]}]),
        (None, [{"message": "Field required", "path": ["text"]}]),
    ],
)
@pytest.mark.parametrize("wait", ["", "?wait=result"])
async def test_schema_invalid_input_is_422_and_creates_no_run(
    client: httpx.AsyncClient,
    runtime: Runtime,
    body: dict[str, Any] | None,
    issues: list[dict[str, Any]],
    wait: str,
) -> None:
    if body is None:  # no body at all: the schema sees {}
        response = await client.post(f"/workflows/echo{wait}")
    else:
        response = await client.post(f"/workflows/echo{wait}", json=body)

    error = assert_error(response, 422, "action_input_validation", message=INPUT_SCHEMA_MESSAGE)
    assert error["meta"] == {"action": "workflow", "issues": issues}
    assert error["details"] == "\n".join(
        f"- {'.'.join(issue['path'])}: {issue['message']}" for issue in issues
    )
    assert await run_ids(runtime) == []
    assert (await runtime.list_runs()).runs == []


@pytest.mark.parametrize("body", [[1, 2], "text", 3, True])
async def test_input_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, runtime: Runtime, body: Any
) -> None:
    response = await client.post("/workflows/echo", json=body)

    error = assert_error(response, 422, "action_input_validation", message=INPUT_SCHEMA_MESSAGE)
    assert error["meta"]["action"] == "workflow"
    assert len(error["meta"]["issues"]) >= 1
    assert await run_ids(runtime) == []


async def test_a_number_too_large_for_a_double_is_refused_as_input(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # JSON.parse reads 1e999 as Infinity; no JSON document can hold that, so the body is
    # refused as malformed JSON (a deliberate choice: never a 500, and never a run).
    response = await client.post(
        "/workflows/echo", content=b'{"text": 1e999}', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_json"
    assert "out of range" in response.json()["error"]["details"]
    assert await run_ids(runtime) == []


@pytest.mark.parametrize("body", [b'{"a": 1}', b"null", b"0", b'""', b"[]", b"{}"])
@pytest.mark.parametrize("wait", ["", "?wait=result"])
async def test_input_to_a_workflow_without_input_schema_is_422(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, wait: str
) -> None:
    response = await client.post(
        f"/workflows/none{wait}", content=body, headers={"content-type": "application/json"}
    )

    error = assert_error(
        response,
        422,
        "workflow_input_unexpected",
        message='Workflow "none" does not accept input.',
        details="Omit the input: this workflow declares no input schema.",
    )
    assert error["meta"] == {"workflow": "none"}
    assert await run_ids(runtime) == []


# --- 403 from the route dependency ----------------------------------------------------------


@pytest.mark.parametrize("header", [None, "no", "YES"])
async def test_a_denying_route_dependency_answers_its_own_403(
    client: httpx.AsyncClient, runtime: Runtime, header: str | None
) -> None:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["x-allow"] = header
    # The body is malformed: the dependency runs before the body is read.
    response = await client.post("/workflows/guarded?wait=result", content=b"{", headers=headers)

    assert response.status_code == 403
    assert response.json() == {"detail": "Not allowed."}
    assert await run_ids(runtime) == []


async def test_an_allowing_route_dependency_lets_the_run_through(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/workflows/guarded?wait=result", headers={"x-allow": "yes"})

    assert response.status_code == 200
    assert response.json()["result"] == "guarded"


async def test_the_route_dependency_runs_once_per_invocation(
    client: httpx.AsyncClient, controls: Controls
) -> None:
    assert (await client.post("/workflows/counted")).status_code == 202
    assert (await client.post("/workflows/counted?wait=result")).status_code == 200

    assert controls.route_calls == ["POST", "POST"]


# --- 500: a failed wait=result run (deviation: meta.runId) ----------------------------------


async def test_a_failed_wait_result_run_answers_500_internal_error_with_its_run_id(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/workflows/failing?wait=result")

    error = assert_error(
        response,
        500,
        "internal_error",
        message="An internal error occurred.",
        details="The server encountered an unexpected error while handling this request.",
    )
    [run_id] = await run_ids(runtime)
    assert error["meta"] == {"runId": run_id}
    assert "boom" not in response.text  # an untyped failure's message never leaks
    record = await runtime.get_run(run_id)
    assert record is not None
    assert record.status == "errored"
    assert record.error == {"name": "RuntimeError", "message": "boom"}


async def test_a_typed_failure_answers_500_with_its_type(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/workflows/typed_fail?wait=result")

    [run_id] = await run_ids(runtime)
    error = assert_error(
        response,
        500,
        "operation_failed",
        message="prompt failed: the model refused",
        details=f'Run "{run_id}" ended with an error.',
    )
    assert error["meta"] == {"runId": run_id}
    record = await runtime.get_run(run_id)
    assert record is not None
    assert record.status == "errored"
    assert record.error is not None
    assert record.error["type"] == "operation_failed"


async def test_a_failing_detached_run_is_still_admitted_with_202(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/workflows/failing")

    assert response.status_code == 202
    record = await runtime.wait(response.json()["runId"], timeout=5)
    assert record.status == "errored"


# --- Trace context --------------------------------------------------------------------------


async def test_traceparent_and_tracestate_are_stored_in_the_record(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/workflows/none?wait=result",
        headers={
            "traceparent": TRACEPARENT,
            "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        },
    )

    record = await meta_of(client, response.json()["runId"])
    assert record["traceCarrier"] == {
        "traceparent": TRACEPARENT,
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    }


async def test_traceparent_alone_is_stored_without_tracestate(client: httpx.AsyncClient) -> None:
    response = await client.post("/workflows/none", headers={"traceparent": TRACEPARENT})

    record = await meta_of(client, response.json()["runId"])
    assert record["traceCarrier"] == {"traceparent": TRACEPARENT}


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "",
    ],
)
async def test_an_invalid_traceparent_is_ignored(
    client: httpx.AsyncClient, traceparent: str
) -> None:
    response = await client.post(
        "/workflows/none?wait=result",
        headers={"traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE"},
    )

    assert response.status_code == 200
    record = await meta_of(client, response.json()["runId"])
    assert "traceCarrier" not in record
    assert ISO_MS.match(record["startedAt"])


# --- 413: bodies over max_body_bytes, before parsing (deviation) -----------------------------

SMALL_LIMIT = 64


@pytest.fixture
def small_app(make_app: AppFactory) -> FastAPI:
    return make_app(max_body_bytes=SMALL_LIMIT)


@pytest.fixture
async def small_client(small_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(small_app) as opened:
        yield opened


def assert_too_large(response: httpx.Response) -> None:
    assert_error(
        response,
        413,
        "payload_too_large",
        message="Request body is too large.",
        details=f"Request bodies are limited to {SMALL_LIMIT} bytes.",
    )


def padded_json(size: int) -> bytes:
    """A valid ``{"text": ...}`` body of exactly ``size`` bytes."""
    body = b'{"text":"' + b"x" * (size - 11) + b'"}'
    assert len(body) == size
    return body


async def test_a_body_at_the_limit_is_accepted(
    small_client: httpx.AsyncClient,
) -> None:
    response = await small_client.post(
        "/workflows/echo?wait=result",
        content=padded_json(SMALL_LIMIT),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (padded_json(SMALL_LIMIT + 1), "application/json"),
        (b"{" * 500, "application/json"),  # malformed, but too large is said first
        (b"x" * 500, "text/plain"),  # not JSON either: still 413, not 415
    ],
    ids=["valid-json", "malformed-json", "text"],
)
async def test_a_declared_length_over_the_limit_is_413(
    small_client: httpx.AsyncClient, runtime: Runtime, body: bytes, content_type: str
) -> None:
    response = await small_client.post(
        "/workflows/echo", content=body, headers={"content-type": content_type}
    )

    assert_too_large(response)
    assert await run_ids(runtime) == []


async def test_a_chunked_body_without_content_length_over_the_limit_is_413(
    small_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b'{"text":"', b"x" * 40, b"x" * 40, b'"}'):  # 91 bytes, in 4 chunks
            yield piece

    request = small_client.build_request(
        "POST",
        "/workflows/echo?wait=result",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await small_client.send(request)

    assert_too_large(response)
    assert await run_ids(runtime) == []


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(
    small_app: FastAPI, runtime: Runtime
) -> None:
    # Raw ASGI, so the declared length can exceed what is (never) sent.
    received: list[dict[str, Any]] = []
    sent: list[MutableMapping[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        received.append({})
        await never.wait()  # a body that never arrives: reading it would hang
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/workflows/echo",
        "raw_path": b"/workflows/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"gateway.test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000000000"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway.test", 80),
        "state": {},
    }
    await asyncio.wait_for(small_app(scope, receive, send), timeout=5)

    assert received == []
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert start["status"] == 413
    body = b"".join(message.get("body", b"") for message in sent[1:])
    assert b'"type":"payload_too_large"' in body
    assert await run_ids(runtime) == []


async def test_the_default_app_accepts_bodies_below_its_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/workflows/echo?wait=result", json={"text": "y" * 3000})

    assert response.status_code == 200
