"""``/runs/{runId}`` catch-up reads, ``?meta``, HEAD and the exposure rules (reference 1.15,
1.17, 1.23), plus the routes beyond Flue: ``GET /runs``, ``POST /runs/{runId}/cancel``,
``GET /healthz`` and the envelope of unknown routes.

Live reads (long-poll, SSE) and cancelling an active run are in ``test_live.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import HTTPException, Request

from flue_actors import Runtime

from .conftest import (
    AppFactory,
    Controls,
    asgi_client,
    assert_error,
    assert_security_headers,
    expected_etag,
    offset_of,
    run_ids,
    start_run,
    wait_for_length,
)

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RUN_NOT_FOUND_DETAILS = "Verify the run id is correct and its history is still available."
ROUTE_NOT_FOUND_DETAILS = "Verify the request method and path are correct."
UNKNOWN_RUN = "run_" + "Z" * 26


async def finished(client: httpx.AsyncClient, name: str, input: Any = None) -> str:
    """Run ``name`` to its end through the gateway; its run id."""
    if input is None:
        response = await client.post(f"/workflows/{name}?wait=result")
    else:
        response = await client.post(f"/workflows/{name}?wait=result", json=input)
    assert response.status_code in (200, 500), response.text
    if response.status_code == 200:
        run_id: str = response.json()["runId"]
    else:
        run_id = response.json()["error"]["meta"]["runId"]
    return run_id


async def read_pages(
    client: httpx.AsyncClient, run_id: str, offset: str = "-1"
) -> list[httpx.Response]:
    """Catch-up pages from ``offset`` until ``Stream-Up-To-Date``, as Flue's SDK reads."""
    pages: list[httpx.Response] = []
    for _ in range(100):
        response = await client.get(f"/runs/{run_id}", params={"offset": offset})
        assert response.status_code == 200, response.text
        pages.append(response)
        if response.headers.get("stream-up-to-date") == "true":
            return pages
        assert response.json(), "a page that is not up to date must carry events"
        offset = response.headers["stream-next-offset"]
    raise AssertionError("never up to date")


def assert_catch_up_headers(
    response: httpx.Response,
    run_id: str,
    *,
    start: str,
    next_offset: str,
    up_to_date: bool,
    closed: bool,
) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert_security_headers(response)
    assert response.headers["stream-next-offset"] == next_offset
    assert response.headers.get("stream-up-to-date") == ("true" if up_to_date else None)
    assert response.headers.get("stream-closed") == ("true" if closed else None)
    assert response.headers["etag"] == expected_etag(run_id, start, next_offset, closed=closed)
    assert "stream-cursor" not in response.headers


# --- Catch-up -------------------------------------------------------------------------------


async def test_catch_up_of_a_finished_run_is_every_event_with_closed_headers(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "echo", {"text": "hi"})

    response = await client.get(f"/runs/{run_id}")

    assert_catch_up_headers(
        response, run_id, start="-1", next_offset=offset_of(1), up_to_date=True, closed=True
    )
    events = response.json()
    assert [event["type"] for event in events] == ["run_start", "run_end"]
    assert [event["eventIndex"] for event in events] == [0, 1]
    assert all(event["v"] == 3 and event["runId"] == run_id for event in events)
    assert events[0]["input"] == {"text": "hi"}
    assert events[0]["workflowName"] == "echo"
    assert events[1]["result"] == {"text": "hi"}
    assert events[1]["isError"] is False


async def test_catch_up_pages_hold_at_most_100_events(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "logger", {"count": 150})  # 152 events

    pages = await read_pages(client, run_id)

    assert [len(page.json()) for page in pages] == [100, 52]
    assert_catch_up_headers(
        pages[0], run_id, start="-1", next_offset=offset_of(99), up_to_date=False, closed=False
    )
    assert_catch_up_headers(
        pages[1],
        run_id,
        start=offset_of(99),
        next_offset=offset_of(151),
        up_to_date=True,
        closed=True,
    )
    events = [event for page in pages for event in page.json()]
    assert [event["eventIndex"] for event in events] == list(range(152))
    assert [event["message"] for event in events[1:-1]] == [f"line {i}" for i in range(150)]
    assert events[-1]["type"] == "run_end"


async def test_a_read_at_the_tail_of_a_closed_stream_is_empty_and_closed(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "none")

    response = await client.get(f"/runs/{run_id}?offset={offset_of(1)}")

    assert response.json() == []
    assert_catch_up_headers(
        response,
        run_id,
        start=offset_of(1),
        next_offset=offset_of(1),
        up_to_date=True,
        closed=True,
    )


async def test_an_active_run_reads_up_to_date_but_not_closed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = await start_run(client, "blocking")
    await wait_for_length(runtime, run_id, 2)  # run_start, log "waiting"

    response = await client.get(f"/runs/{run_id}")

    assert [event["type"] for event in response.json()] == ["run_start", "log"]
    assert_catch_up_headers(
        response, run_id, start="-1", next_offset=offset_of(1), up_to_date=True, closed=False
    )


async def test_an_opaque_offset_resumes_strictly_after_it(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "logger", {"count": 3})  # 5 events
    first = (await client.get(f"/runs/{run_id}")).json()

    response = await client.get(f"/runs/{run_id}", params={"offset": offset_of(1)})

    assert response.json() == first[2:]
    assert_catch_up_headers(
        response, run_id, start=offset_of(1), next_offset=offset_of(4), up_to_date=True, closed=True
    )


async def test_an_offset_past_the_tail_reads_nothing(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "none")

    response = await client.get(f"/runs/{run_id}", params={"offset": offset_of(50)})

    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["stream-up-to-date"] == "true"


async def test_offset_now_reads_nothing_and_points_at_the_tail_without_etag(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "logger", {"count": 2})  # 4 events

    response = await client.get(f"/runs/{run_id}?offset=now")

    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["stream-next-offset"] == offset_of(3)
    assert response.headers["stream-up-to-date"] == "true"
    assert response.headers["stream-closed"] == "true"
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers
    assert_security_headers(response)


async def test_offset_now_of_an_active_run_is_not_closed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = await start_run(client, "blocking")
    await wait_for_length(runtime, run_id, 2)

    response = await client.get(f"/runs/{run_id}?offset=now")

    assert response.json() == []
    assert response.headers["stream-next-offset"] == offset_of(1)
    assert response.headers["stream-up-to-date"] == "true"
    assert "stream-closed" not in response.headers


@pytest.mark.parametrize(
    ("tail", "first_seq", "start"),
    [
        ("1", 11, offset_of(10)),
        ("3", 9, offset_of(8)),
        ("11", 1, offset_of(0)),
        ("12", 0, "-1"),
        ("500", 0, "-1"),
    ],
)
async def test_tail_reads_the_last_n_events(
    client: httpx.AsyncClient, tail: str, first_seq: int, start: str
) -> None:
    run_id = await finished(client, "logger", {"count": 10})  # 12 events
    every = (await client.get(f"/runs/{run_id}")).json()

    response = await client.get(f"/runs/{run_id}?tail={tail}")
    explicit = await client.get(f"/runs/{run_id}?offset=-1&tail={tail}")

    assert response.json() == every[first_seq:]
    assert explicit.json() == every[first_seq:]
    assert_catch_up_headers(
        response, run_id, start=start, next_offset=offset_of(11), up_to_date=True, closed=True
    )


async def test_tail_applies_only_from_the_start(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "logger", {"count": 10})
    every = (await client.get(f"/runs/{run_id}")).json()

    from_offset = await client.get(f"/runs/{run_id}?offset={offset_of(2)}&tail=1")
    from_now = await client.get(f"/runs/{run_id}?offset=now&tail=1")

    assert from_offset.json() == every[3:]
    assert from_now.json() == []


# --- ETag and If-None-Match -----------------------------------------------------------------


async def test_if_none_match_with_the_etag_is_304_with_an_empty_body(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "none")
    first = await client.get(f"/runs/{run_id}")
    tag = first.headers["etag"]
    assert tag == expected_etag(run_id, "-1", offset_of(1), closed=True)

    response = await client.get(f"/runs/{run_id}", headers={"if-none-match": tag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert_security_headers(response)
    assert "stream-next-offset" not in response.headers
    assert "content-type" not in response.headers


@pytest.mark.parametrize("header", ["W/{tag}", '"other"', "*", "{tag}, {tag}"])
async def test_any_other_if_none_match_reads_normally(
    client: httpx.AsyncClient, header: str
) -> None:
    run_id = await finished(client, "none")
    tag = (await client.get(f"/runs/{run_id}")).headers["etag"]

    response = await client.get(
        f"/runs/{run_id}", headers={"if-none-match": header.format(tag=tag)}
    )

    assert response.status_code == 200
    assert len(response.json()) == 2


async def test_the_etag_of_an_open_stream_changes_when_it_grows(
    client: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await start_run(client, "paced")
    await wait_for_length(runtime, run_id, 1)
    before = await client.get(f"/runs/{run_id}")
    assert before.headers["etag"] == expected_etag(run_id, "-1", offset_of(0), closed=False)

    controls.feed.put_nowait("more")
    await wait_for_length(runtime, run_id, 2)
    response = await client.get(
        f"/runs/{run_id}", headers={"if-none-match": before.headers["etag"]}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == expected_etag(run_id, "-1", offset_of(1), closed=False)
    assert [event["type"] for event in response.json()] == ["run_start", "log"]


async def test_offset_now_has_no_etag_so_if_none_match_never_applies(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "none")
    tag = expected_etag(run_id, "now", offset_of(1), closed=True)

    response = await client.get(f"/runs/{run_id}?offset=now", headers={"if-none-match": tag})

    assert response.status_code == 200
    assert response.json() == []


# --- 400 invalid_request, in Flue's validation order ----------------------------------------

DUPLICATE_OFFSET = "Duplicate offset parameters are not allowed."
DUPLICATE_TAIL = "Duplicate tail parameters are not allowed."
BAD_TAIL = "Tail must be an integer greater than or equal to 1."
LIVE_NEEDS_OFFSET = "Offset is required for live mode."
BAD_LIVE = 'Invalid live mode. Use "long-poll" or "sse".'
BAD_OFFSET = "Invalid offset format."


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ("offset=-1&offset=-1", DUPLICATE_OFFSET),
        ("offset=zzz&offset=-1&tail=1&tail=2&tail=0&live=bogus", DUPLICATE_OFFSET),
        ("tail=1&tail=2", DUPLICATE_TAIL),
        ("tail=1&tail=1&live=bogus&offset=zzz", DUPLICATE_TAIL),
        ("tail=0", BAD_TAIL),
        ("tail=-1", BAD_TAIL),
        ("tail=01", BAD_TAIL),
        ("tail=1.5", BAD_TAIL),
        ("tail=", BAD_TAIL),
        ("tail=abc", BAD_TAIL),
        ("tail=0&live=bogus", BAD_TAIL),
        ("tail=x&offset=zzz", BAD_TAIL),
        ("live=long-poll", LIVE_NEEDS_OFFSET),
        ("live=sse", LIVE_NEEDS_OFFSET),
        ("live=bogus", LIVE_NEEDS_OFFSET),
        ("live=", LIVE_NEEDS_OFFSET),
        ("live=sse&tail=3", LIVE_NEEDS_OFFSET),
        ("offset=-1&live=bogus", BAD_LIVE),
        ("offset=-1&live=", BAD_LIVE),
        ("offset=zzz&live=SSE", BAD_LIVE),
        ("offset=zzz", BAD_OFFSET),
        ("offset=", BAD_OFFSET),
        ("offset=1", BAD_OFFSET),
        ("offset=-2", BAD_OFFSET),
        ("offset=NOW", BAD_OFFSET),
        ("offset=_1", BAD_OFFSET),
        ("offset=1_", BAD_OFFSET),
        ("offset=0_1_2", BAD_OFFSET),
        ("offset=zzz&live=sse", BAD_OFFSET),
        ("offset=zzz&live=long-poll", BAD_OFFSET),
    ],
)
async def test_invalid_read_parameters_are_400_in_flue_order(
    client: httpx.AsyncClient, query: str, details: str
) -> None:
    run_id = await finished(client, "none")

    response = await client.get(f"/runs/{run_id}?{query}")

    assert_error(response, 400, "invalid_request", message="Request is malformed.", details=details)


async def test_an_unknown_run_is_404_before_its_parameters_are_checked(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/runs/{UNKNOWN_RUN}?offset=zzz&live=bogus")

    assert_error(response, 404, "run_not_found")


# --- ?meta ----------------------------------------------------------------------------------


async def test_meta_of_a_completed_run_is_its_record(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "echo", {"text": "hi"})

    response = await client.get(f"/runs/{run_id}?meta")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert not any(name.startswith("stream-") for name in response.headers)
    assert "etag" not in response.headers
    record = response.json()
    assert set(record) == {
        "runId",
        "workflowName",
        "status",
        "startedAt",
        "input",
        "endedAt",
        "isError",
        "durationMs",
        "result",
    }
    assert record["runId"] == run_id
    assert record["workflowName"] == "echo"
    assert record["status"] == "completed"
    assert record["input"] == {"text": "hi"}
    assert record["isError"] is False
    assert record["result"] == {"text": "hi"}
    assert ISO_MS.match(record["startedAt"])
    assert ISO_MS.match(record["endedAt"])
    assert record["startedAt"] <= record["endedAt"]
    assert isinstance(record["durationMs"], int)
    assert record["durationMs"] >= 0


async def test_meta_of_an_errored_run_has_its_error_and_no_result(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished(client, "failing")

    record = (await client.get(f"/runs/{run_id}?meta")).json()

    assert set(record) == {
        "runId",
        "workflowName",
        "status",
        "startedAt",
        "endedAt",
        "isError",
        "durationMs",
        "error",
    }
    assert record["status"] == "errored"
    assert record["isError"] is True
    assert record["error"] == {"name": "RuntimeError", "message": "boom"}


async def test_meta_of_a_run_returning_none_has_result_null(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "none")

    record = (await client.get(f"/runs/{run_id}?meta")).json()

    assert "input" not in record
    assert record["result"] is None


async def test_meta_of_an_active_run_has_only_the_admission_fields(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = await start_run(client, "blocking")
    await wait_for_length(runtime, run_id, 2)

    record = (await client.get(f"/runs/{run_id}?meta")).json()

    assert record == {
        "runId": run_id,
        "workflowName": "blocking",
        "status": "active",
        "startedAt": record["startedAt"],
    }


@pytest.mark.parametrize("query", ["meta=", "meta=1", "meta&offset=zzz", "meta&live=bogus&tail=0"])
async def test_meta_ignores_its_value_and_the_read_parameters(
    client: httpx.AsyncClient, query: str
) -> None:
    run_id = await finished(client, "none")

    response = await client.get(f"/runs/{run_id}?{query}")

    assert response.status_code == 200
    assert response.json()["runId"] == run_id


# --- HEAD -----------------------------------------------------------------------------------


def assert_head(response: httpx.Response, run_id: str, next_offset: str, *, closed: bool) -> None:
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"
    assert_security_headers(response)
    assert response.headers["stream-next-offset"] == next_offset
    assert response.headers["stream-up-to-date"] == "true"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get("stream-closed") == ("true" if closed else None)
    assert response.headers["etag"] == expected_etag(run_id, "-1", next_offset, closed=closed)


async def test_head_of_a_finished_run(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "logger", {"count": 2})

    assert_head(await client.head(f"/runs/{run_id}"), run_id, offset_of(3), closed=True)


async def test_head_of_an_active_run_is_not_closed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = await start_run(client, "blocking")
    await wait_for_length(runtime, run_id, 2)

    assert_head(await client.head(f"/runs/{run_id}"), run_id, offset_of(1), closed=False)


@pytest.mark.parametrize("query", ["meta", "offset=zzz&live=bogus", "tail=0"])
async def test_head_ignores_meta_and_read_parameters(client: httpx.AsyncClient, query: str) -> None:
    run_id = await finished(client, "none")

    response = await client.head(f"/runs/{run_id}?{query}")

    assert_head(response, run_id, offset_of(1), closed=True)


# --- Exposure: 404 for runs that are not readable, the runs dependency, 405 -----------------

NOT_A_RUN_ID = [
    "not-a-run",
    "run_",
    "run_123",
    "run_" + "z" * 26,  # lower case
    "run_" + "0" * 25 + "I",  # I is not Crockford
    "run_" + "0" * 27,
    "RUN_" + "0" * 26,
    "%20",
    "healthz",
    "x" * 600,
]


@pytest.mark.parametrize("run_id", [*NOT_A_RUN_ID, UNKNOWN_RUN])
@pytest.mark.parametrize("request_line", ["GET ", "GET ?meta", "POST ", "DELETE ", "GET ?live=sse"])
async def test_malformed_and_unknown_run_ids_are_a_plain_404(
    client: httpx.AsyncClient, controls: Controls, run_id: str, request_line: str
) -> None:
    await finished(client, "counted")
    controls.runs_calls.clear()
    method, query = request_line.split(" ")

    response = await client.request(method, f"/runs/{run_id}{query}")

    shown = run_id.replace("%20", " ")
    error = assert_error(
        response,
        404,
        "run_not_found",
        message=f'Run "{shown}" was not found.',
        details=RUN_NOT_FOUND_DETAILS,
    )
    assert set(error) == {"type", "message", "details"}
    assert controls.runs_calls == []


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_head_and_get_of_an_unknown_run_are_404(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, f"/runs/{UNKNOWN_RUN}")

    assert response.status_code == 404
    assert_security_headers(response)


@pytest.mark.parametrize("name", ["routed", "hidden"])
@pytest.mark.parametrize("request_line", ["GET ", "GET ?meta", "HEAD ", "POST ", "PUT "])
async def test_runs_of_a_workflow_without_runs_export_are_the_same_404(
    client: httpx.AsyncClient, runtime: Runtime, name: str, request_line: str
) -> None:
    receipt = await runtime.invoke(name)
    await runtime.wait(receipt.run_id, timeout=5)
    method, query = request_line.split(" ")

    response = await client.request(method, f"/runs/{receipt.run_id}{query}")

    assert response.status_code == 404
    assert_security_headers(response)
    if method != "HEAD":
        unknown = await client.request(method, f"/runs/{UNKNOWN_RUN}{query}")
        assert response.json() == json.loads(unknown.text.replace(UNKNOWN_RUN, receipt.run_id))


async def test_the_runs_dependency_is_called_for_every_read_of_its_runs(
    client: httpx.AsyncClient, controls: Controls
) -> None:
    run_id = await finished(client, "counted")

    await client.get(f"/runs/{run_id}")
    await client.get(f"/runs/{run_id}?meta")
    await client.head(f"/runs/{run_id}")
    await client.get(f"/runs/{run_id}?offset=zzz")  # 400, but only after the dependency

    path = f"/runs/{run_id}"
    assert controls.runs_calls == [f"GET {path}", f"GET {path}", f"HEAD {path}", f"GET {path}"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_after_the_runs_dependency_ran(
    client: httpx.AsyncClient, controls: Controls, method: str
) -> None:
    run_id = await finished(client, "counted")

    response = await client.request(method, f"/runs/{run_id}")

    assert_error(
        response,
        405,
        "method_not_allowed",
        message=f"HTTP method {method} is not allowed on this endpoint.",
        details='This endpoint accepts "GET", "HEAD" only.',
    )
    assert response.headers["allow"] == "GET, HEAD"
    assert controls.runs_calls == [f"{method} /runs/{run_id}"]


@pytest.mark.parametrize(
    "request_line", ["GET ", "GET ?meta", "GET ?offset=zzz", "HEAD ", "POST ", "DELETE "]
)
async def test_a_denying_runs_dependency_answers_before_anything_else(
    client: httpx.AsyncClient, request_line: str
) -> None:
    run_id = await finished(client, "private")
    method, query = request_line.split(" ")

    denied = await client.request(method, f"/runs/{run_id}{query}")
    allowed = await client.request(method, f"/runs/{run_id}{query}", headers={"x-allow": "yes"})

    assert denied.status_code == 403
    if method != "HEAD":
        assert denied.json() == {"detail": "Not allowed."}
    assert allowed.status_code != 403


# --- GET /runs (beyond Flue) ----------------------------------------------------------------


async def test_listing_one_workflows_runs(client: httpx.AsyncClient) -> None:
    first = await finished(client, "echo", {"text": "a"})
    await finished(client, "none")
    second = await finished(client, "echo", {"text": "b"})

    response = await client.get("/runs?workflow=echo")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    runs = response.json()["runs"]
    assert [run["runId"] for run in runs] == [second, first]  # newest first
    assert set(runs[0]) == {
        "runId",
        "workflowName",
        "status",
        "startedAt",
        "endedAt",
        "durationMs",
        "isError",
    }
    assert {run["workflowName"] for run in runs} == {"echo"}
    assert "nextCursor" not in response.json()


async def test_listing_pages_with_limit_and_cursor(client: httpx.AsyncClient) -> None:
    ids = [await finished(client, "none") for _ in range(3)]

    first = (await client.get("/runs?workflow=none&limit=2")).json()
    second = (await client.get(f"/runs?workflow=none&limit=2&cursor={first['nextCursor']}")).json()

    assert [run["runId"] for run in first["runs"]] == ids[::-1][:2]
    assert [run["runId"] for run in second["runs"]] == ids[::-1][2:]
    assert "nextCursor" not in second


async def test_listing_filters_by_status(client: httpx.AsyncClient, runtime: Runtime) -> None:
    active = await start_run(client, "blocking")
    await wait_for_length(runtime, active, 1)

    response = await client.get("/runs?workflow=blocking&status=active")
    none_completed = await client.get("/runs?workflow=blocking&status=completed")

    assert [run["runId"] for run in response.json()["runs"]] == [active]
    assert none_completed.json() == {"runs": []}


@pytest.mark.parametrize("query", ["status=done", "limit=abc", "limit=-1"])
async def test_listing_refuses_bad_parameters(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/runs?workflow=echo&{query}")

    assert_error(response, 400, "invalid_request", message="Request is malformed.")


async def test_listing_is_authorized_by_the_workflows_runs_dependency(
    client: httpx.AsyncClient, controls: Controls
) -> None:
    await finished(client, "private")

    denied = await client.get("/runs?workflow=private")
    allowed = await client.get("/runs?workflow=private", headers={"x-allow": "yes"})
    await client.get("/runs?workflow=counted")

    assert denied.status_code == 403
    assert denied.json() == {"detail": "Not allowed."}
    assert allowed.status_code == 200
    assert len(allowed.json()["runs"]) == 1
    assert controls.runs_calls == ["GET /runs"]


@pytest.mark.parametrize("name", ["nope", "routed", "hidden"])
async def test_listing_an_unknown_or_runs_less_workflow_is_404(
    client: httpx.AsyncClient, runtime: Runtime, name: str
) -> None:
    if name != "nope":
        await runtime.wait((await runtime.invoke(name)).run_id, timeout=5)

    response = await client.get(f"/runs?workflow={name}")

    assert_error(
        response,
        404,
        "workflow_not_found",
        message=f'Workflow "{name}" is not registered.',
        details="Verify the workflow name is correct.",
    )


async def test_listing_across_workflows_is_not_served_without_a_dependency(
    client: httpx.AsyncClient,
) -> None:
    await finished(client, "none")

    response = await client.get("/runs")

    assert_error(response, 404, "route_not_found", message="No route matches GET /runs.")


@pytest.fixture
async def listing_client(
    make_app: AppFactory, controls: Controls
) -> AsyncIterator[httpx.AsyncClient]:
    async def list_runs(request: Request) -> None:
        controls.list_calls += 1
        if request.headers.get("authorization") != "Bearer admin":
            raise HTTPException(status_code=401, detail="Admins only.")

    async with asgi_client(make_app(list_runs=list_runs)) as opened:
        yield opened


async def test_listing_across_workflows_with_a_list_runs_dependency(
    listing_client: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    await finished(listing_client, "none")
    await runtime.wait((await runtime.invoke("hidden")).run_id, timeout=5)

    denied = await listing_client.get("/runs")
    allowed = await listing_client.get("/runs", headers={"authorization": "Bearer admin"})

    assert denied.status_code == 401
    assert denied.json() == {"detail": "Admins only."}
    assert allowed.status_code == 200
    assert [run["workflowName"] for run in allowed.json()["runs"]] == ["hidden", "none"]
    assert controls.list_calls == 2


# --- POST /runs/{runId}/cancel (beyond Flue); cancelling an active run is in test_live ------


async def test_cancelling_an_ended_run_is_409(client: httpx.AsyncClient) -> None:
    run_id = await finished(client, "none")

    response = await client.post(f"/runs/{run_id}/cancel")

    assert_error(
        response,
        409,
        "run_not_active",
        message=f'Run "{run_id}" is not active.',
        details="The run has already ended; only active runs can be cancelled.",
    )


@pytest.mark.parametrize("run_id", ["not-a-run", UNKNOWN_RUN])
async def test_cancelling_an_unknown_run_is_404(
    client: httpx.AsyncClient, runtime: Runtime, run_id: str
) -> None:
    response = await client.post(f"/runs/{run_id}/cancel")

    assert_error(response, 404, "run_not_found", message=f'Run "{run_id}" was not found.')


async def test_cancelling_a_run_of_a_runs_less_workflow_is_404(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    receipt = await runtime.invoke("routed")
    await runtime.wait(receipt.run_id, timeout=5)

    response = await client.post(f"/runs/{receipt.run_id}/cancel")

    assert_error(response, 404, "run_not_found")


async def test_cancel_is_behind_the_runs_dependency(
    client: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    private = await finished(client, "private")
    counted = await finished(client, "counted")

    denied = await client.post(f"/runs/{private}/cancel")
    await client.post(f"/runs/{counted}/cancel")

    assert denied.status_code == 403
    assert controls.runs_calls == [f"POST /runs/{counted}/cancel"]


# --- /healthz, unknown routes, wrong methods on beyond-Flue routes --------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/agents/a/b"),
        ("GET", "/workflows"),
        ("POST", "/workflows/"),
        ("POST", "/workflows/echo/extra"),
        ("GET", "/runs/x/y"),
        ("GET", "/runs/"),
        ("GET", "/"),
    ],
)
async def test_unknown_routes_are_404_route_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert_error(response, 404, "route_not_found", message=f"No route matches {method} {path}.")


async def test_route_not_found_details_are_flues(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")

    assert_error(response, 404, "route_not_found", details=ROUTE_NOT_FOUND_DETAILS)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/runs/{run_id}/cancel", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/runs", "GET"),
    ],
)
async def test_wrong_methods_on_routes_beyond_flue_get_the_405_envelope(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    run_id = await finished(client, "none")

    response = await client.request(method, path.format(run_id=run_id))

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


async def test_no_read_creates_a_run(client: httpx.AsyncClient, runtime: Runtime) -> None:
    run_id = await finished(client, "none")
    await client.get(f"/runs/{run_id}")
    await client.head(f"/runs/{run_id}")
    await client.get("/runs?workflow=none")

    assert await run_ids(runtime) == [run_id]


async def test_a_bare_async_dependency_that_raises_denies_as_fastapi_would(
    make_app: AppFactory, runtime: Runtime
) -> None:
    # `async def` without parameters is awaited directly (nothing to solve): its HTTPException
    # must still be FastAPI's answer, with its status, detail and headers.
    async def admins_only() -> None:
        raise HTTPException(status_code=401, detail="Admins only.", headers={"WWW-Auth": "x"})

    await runtime.wait((await runtime.invoke("none")).run_id, timeout=5)
    async with asgi_client(make_app(list_runs=admins_only)) as opened:
        denied = await opened.get("/runs")
    assert denied.status_code == 401
    assert denied.json() == {"detail": "Admins only."}
    assert denied.headers["www-auth"] == "x"


async def test_runs_admitted_elsewhere_or_read_by_another_app_are_found_and_guarded(
    make_app: AppFactory, runtime: Runtime, controls: Controls
) -> None:
    # An app remembers the workflow of the runs it admitted; a run it never saw (admitted by
    # another process or app on the same store) is looked up, then guarded the same way.
    async with asgi_client(make_app()) as first, asgi_client(make_app()) as second:
        run_id = await finished(first, "counted")
        elsewhere = (await runtime.invoke("counted")).run_id
        await runtime.wait(elsewhere, timeout=5)
        for client, run in ((first, run_id), (second, run_id), (first, elsewhere)):
            for _ in range(2):
                response = await client.get(f"/runs/{run}", params={"offset": "-1"})
                assert response.status_code == 200, response.text
                assert response.json()[-1]["type"] == "run_end"
                assert response.headers["stream-closed"] == "true"
        assert len(controls.runs_calls) == 6
        private = (await runtime.invoke("private")).run_id
        await runtime.wait(private, timeout=5)
        assert (await first.get(f"/runs/{private}")).status_code == 403
        assert (await second.get(f"/runs/{private}", headers={"X-Allow": "yes"})).status_code == 200
