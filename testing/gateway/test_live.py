"""Live reads against a real uvicorn server on 127.0.0.1 (reference 1.15): long-poll, SSE,
Stream-Cursor, client disconnects, and cancelling an active run (beyond Flue).

The application uses ``long_poll_seconds=0.5`` and ``heartbeat_seconds=0.2``, so "nothing
happened before the timeout" takes half a second. Runs are driven through :class:`Controls`:
``paced`` logs a line whenever the test feeds one, ``blocking`` waits to be released.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest

from flue_actors import Runtime, SqliteEventStore

from .conftest import (
    HEARTBEAT_SECONDS,
    LONG_POLL_SECONDS,
    Controls,
    LiveServer,
    SseReader,
    assert_security_headers,
    current_cursor,
    expected_etag,
    offset_of,
    start_run,
    wait_for_length,
    wait_until,
)

HEARTBEAT = ": heartbeat\n\n"


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client(timeout=5) as opened:
        yield opened


def waiters(runtime: Runtime) -> dict[str, Any]:
    """The SQLite store's registered append waiters, by stream path (white-box)."""
    store = cast(SqliteEventStore, runtime.store)
    return cast(dict[str, Any], store._live.waiters)


def data_frame(payload: str) -> str:
    return f"event: data\ndata:{payload}\n\n"


def control_frame(control: dict[str, Any]) -> str:
    return f"event: control\ndata:{json.dumps(control, separators=(',', ':'))}\n\n"


def open_control(offset: str, cursor: int, *, up_to_date: bool = True) -> str:
    control: dict[str, Any] = {"streamNextOffset": offset, "streamCursor": str(cursor)}
    if up_to_date:
        control["upToDate"] = True
    return control_frame(control)


def closed_control(offset: str) -> str:
    return control_frame({"streamNextOffset": offset, "streamClosed": True})


async def page_text(http: httpx.AsyncClient, run_id: str, offset: str) -> str:
    """The catch-up body after ``offset``: the exact JSON an SSE data frame carries."""
    response = await http.get(f"/runs/{run_id}", params={"offset": offset})
    assert response.status_code == 200
    return response.text


async def paced_run(http: httpx.AsyncClient, runtime: Runtime) -> str:
    """A ``paced`` run that has written its ``run_start`` and waits to be fed."""
    run_id = await start_run(http, "paced")
    await wait_for_length(runtime, run_id, 1)
    return run_id


async def finish_paced(controls: Controls, runtime: Runtime, run_id: str) -> None:
    controls.feed.put_nowait(None)
    record = await runtime.wait(run_id, timeout=5)
    assert record.status == "completed"


def assert_long_poll_204(
    response: httpx.Response, next_offset: str, cursor: int, *, closed: bool
) -> None:
    assert response.status_code == 204
    assert response.content == b""
    assert_security_headers(response)
    assert response.headers["stream-next-offset"] == next_offset
    assert response.headers["stream-up-to-date"] == "true"
    assert response.headers["stream-cursor"] == str(cursor)
    assert response.headers.get("stream-closed") == ("true" if closed else None)
    # Only security and stream headers on a 204.
    for absent in ("content-type", "etag", "cache-control"):
        assert absent not in response.headers, (absent, dict(response.headers))


# --- Long-poll ------------------------------------------------------------------------------


async def test_long_poll_answers_as_soon_as_an_event_is_appended(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    poll = asyncio.create_task(http.get(f"/runs/{run_id}?offset={offset_of(0)}&live=long-poll"))
    await wait_until(lambda: f"runs/{run_id}" in waiters(runtime))

    fed = time.monotonic()
    controls.feed.put_nowait("hello")
    response = await poll
    elapsed = time.monotonic() - fed

    assert response.status_code == 200
    assert elapsed < LONG_POLL_SECONDS / 2, elapsed
    events = response.json()
    assert [(event["type"], event["message"]) for event in events] == [("log", "hello")]
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert_security_headers(response)
    assert response.headers["stream-next-offset"] == offset_of(1)
    assert response.headers["stream-up-to-date"] == "true"
    assert "stream-closed" not in response.headers
    assert response.headers["stream-cursor"] == str(current_cursor(runtime))
    assert response.headers["etag"] == expected_etag(
        run_id, offset_of(0), offset_of(1), closed=False
    )
    await finish_paced(controls, runtime, run_id)


async def test_long_poll_with_events_available_answers_at_once(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    controls.feed.put_nowait("one")
    await wait_for_length(runtime, run_id, 2)

    started = time.monotonic()
    response = await http.get(f"/runs/{run_id}?offset=-1&live=long-poll")

    assert time.monotonic() - started < LONG_POLL_SECONDS / 2
    assert response.status_code == 200
    assert [event["type"] for event in response.json()] == ["run_start", "log"]
    assert response.headers["stream-next-offset"] == offset_of(1)
    assert response.headers["etag"] == expected_etag(run_id, "-1", offset_of(1), closed=False)
    await finish_paced(controls, runtime, run_id)


async def test_long_poll_times_out_with_204_and_a_cursor(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)

    started = time.monotonic()
    response = await http.get(f"/runs/{run_id}?offset={offset_of(0)}&live=long-poll")
    elapsed = time.monotonic() - started

    assert LONG_POLL_SECONDS * 0.9 <= elapsed < LONG_POLL_SECONDS + 1.0, elapsed
    assert_long_poll_204(response, offset_of(0), current_cursor(runtime), closed=False)
    await finish_paced(controls, runtime, run_id)


async def test_long_poll_from_now_waits_for_the_next_event(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    poll = asyncio.create_task(http.get(f"/runs/{run_id}?offset=now&live=long-poll"))
    await wait_until(lambda: f"runs/{run_id}" in waiters(runtime))

    controls.feed.put_nowait("next")
    response = await poll

    assert response.status_code == 200
    assert [event["message"] for event in response.json()] == ["next"]
    # As in Flue, a live read from `now` starts at the resolved tail offset, which the ETag names.
    assert response.headers["etag"] == expected_etag(
        run_id, offset_of(0), offset_of(1), closed=False
    )
    await finish_paced(controls, runtime, run_id)


async def test_long_poll_at_the_tail_of_a_closed_stream_is_204_at_once(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = (await http.post("/workflows/none?wait=result")).json()["runId"]

    for offset in (offset_of(1), "now"):
        started = time.monotonic()
        response = await http.get(f"/runs/{run_id}?offset={offset}&live=long-poll")

        assert time.monotonic() - started < LONG_POLL_SECONDS / 2
        assert_long_poll_204(response, offset_of(1), current_cursor(runtime), closed=True)


async def test_long_poll_wakes_when_the_stream_closes(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    poll = asyncio.create_task(http.get(f"/runs/{run_id}?offset={offset_of(0)}&live=long-poll"))
    await wait_until(lambda: f"runs/{run_id}" in waiters(runtime))

    controls.feed.put_nowait(None)
    response = await poll

    assert response.status_code == 200
    assert [event["type"] for event in response.json()] == ["run_end"]
    assert response.headers["stream-closed"] == "true"
    assert response.headers["etag"] == expected_etag(
        run_id, offset_of(0), offset_of(1), closed=True
    )


@pytest.mark.parametrize(
    ("client_cursor", "low", "high"),
    [
        (None, 0, 0),
        ("{now}", 1, 180),
        ("{ahead}", 1, 180),
        ("{behind}", 0, 0),
        ("abc", 0, 0),
        ("", 0, 0),
    ],
)
async def test_stream_cursor_rules(
    http: httpx.AsyncClient,
    runtime: Runtime,
    client_cursor: str | None,
    low: int,
    high: int,
) -> None:
    run_id = (await http.post("/workflows/none?wait=result")).json()["runId"]
    now = current_cursor(runtime)
    base = now + 1000 if client_cursor == "{ahead}" else now
    params = {"offset": offset_of(1), "live": "long-poll"}
    if client_cursor is not None:
        params["cursor"] = client_cursor.format(now=now, ahead=now + 1000, behind=now - 5)

    for _ in range(5):  # the jitter is random: look at a few answers
        response = await http.get(f"/runs/{run_id}", params=params)

        assert response.status_code == 204
        cursor = int(response.headers["stream-cursor"])
        assert base + low <= cursor <= base + high, (cursor, now, client_cursor)
    # A client already at or past the current interval is always moved strictly ahead.
    if client_cursor in ("{now}", "{ahead}"):
        assert cursor > int(params["cursor"])


# --- SSE ------------------------------------------------------------------------------------


def assert_sse_headers(response: httpx.Response) -> None:
    assert response.status_code == 200
    # The exact value is asserted once, in test_sse_content_type_is_text_event_stream.
    assert response.headers["content-type"].split(";")[0] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert_security_headers(response)


async def test_sse_content_type_is_text_event_stream(http: httpx.AsyncClient) -> None:
    run_id = (await http.post("/workflows/none?wait=result")).json()["runId"]

    async with http.stream("GET", f"/runs/{run_id}?offset=-1&live=sse") as response:
        await response.aread()

    assert response.headers["content-type"] == "text/event-stream"


async def test_sse_of_a_finished_run_is_one_data_frame_then_the_closed_control(
    http: httpx.AsyncClient,
) -> None:
    run_id = (await http.post("/workflows/logger?wait=result", json={"count": 2})).json()["runId"]
    every = await page_text(http, run_id, "-1")

    async with http.stream("GET", f"/runs/{run_id}?offset=-1&live=sse") as response:
        assert_sse_headers(response)
        reader = SseReader(response)
        frames = [await reader.next_frame(), await reader.next_frame(), await reader.next_frame()]

    assert frames == [data_frame(every), closed_control(offset_of(3)), None]


async def test_sse_pages_more_than_100_events_without_waiting(http: httpx.AsyncClient) -> None:
    run_id = (await http.post("/workflows/logger?wait=result", json={"count": 150})).json()["runId"]
    first = await page_text(http, run_id, "-1")
    rest = await page_text(http, run_id, offset_of(99))

    async with http.stream("GET", f"/runs/{run_id}?offset=-1&live=sse") as response:
        reader = SseReader(response)
        frames = [await reader.next_frame() for _ in range(5)]

    control = frames[1]
    assert control is not None
    cursor = json.loads(control.removeprefix("event: control\ndata:"))["streamCursor"]
    assert frames == [
        data_frame(first),
        open_control(offset_of(99), int(cursor), up_to_date=False),
        data_frame(rest),
        closed_control(offset_of(151)),
        None,
    ]


async def test_sse_follows_an_active_run_to_its_end(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    start_page = await page_text(http, run_id, "-1")
    cursor = current_cursor(runtime)

    async with http.stream("GET", f"/runs/{run_id}?offset=-1&live=sse") as response:
        assert_sse_headers(response)
        reader = SseReader(response)
        assert await reader.next_frame() == data_frame(start_page)
        assert await reader.next_frame() == open_control(offset_of(0), cursor)
        at_tail = time.monotonic()

        # Idle: heartbeats, then the keep-alive control once the long-poll timeout passes.
        idle: list[tuple[float, str | None]] = []
        while not idle or idle[-1][1] == HEARTBEAT:
            frame = await reader.next_frame()
            idle.append((time.monotonic() - at_tail, frame))
        beats = [at for at, frame in idle if frame == HEARTBEAT]
        keep_alive_at, keep_alive = idle[-1]
        assert keep_alive == open_control(offset_of(0), cursor)
        assert beats, idle
        assert beats[0] >= HEARTBEAT_SECONDS * 0.75, idle
        assert LONG_POLL_SECONDS * 0.9 <= keep_alive_at < LONG_POLL_SECONDS + 1.0, idle

        controls.feed.put_nowait("hello")
        frames = await non_heartbeat_frames(reader, until=lambda f: f.startswith("event: data"))
        assert all(frame == open_control(offset_of(0), cursor) for frame in frames[:-1]), frames
        assert frames[-1] == data_frame(await page_text(http, run_id, offset_of(0)))
        assert (await non_heartbeat_frames(reader, count=1)) == [open_control(offset_of(1), cursor)]

        controls.feed.put_nowait(None)
        frames = await non_heartbeat_frames(reader, until=lambda f: f.startswith("event: data"))
        assert frames[-1] == data_frame(await page_text(http, run_id, offset_of(1)))
        assert await reader.next_frame() == closed_control(offset_of(2))
        assert await reader.next_frame() is None  # the body ends after the closed control

    record = await runtime.wait(run_id, timeout=5)
    assert record.status == "completed"


async def non_heartbeat_frames(
    reader: SseReader, *, count: int | None = None, until: Any = None
) -> list[str]:
    """Frames other than heartbeats: ``count`` of them, or up to the first matching ``until``."""
    frames: list[str] = []
    while True:
        frame = await reader.next_frame()
        assert frame is not None, f"the body ended after {frames}"
        if frame == HEARTBEAT:
            continue
        frames.append(frame)
        if count is not None and len(frames) == count:
            return frames
        if until is not None and until(frame):
            return frames


async def test_sse_from_now_starts_with_a_control_frame(
    http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    cursor = current_cursor(runtime)

    async with http.stream("GET", f"/runs/{run_id}?offset=now&live=sse") as response:
        reader = SseReader(response)
        assert await reader.next_frame() == open_control(offset_of(0), cursor)
        controls.feed.put_nowait(None)
        frames = await non_heartbeat_frames(reader, count=2)
        assert frames == [
            data_frame(await page_text(http, run_id, offset_of(0))),
            closed_control(offset_of(1)),
        ]
        assert await reader.next_frame() is None


async def test_sse_of_a_finished_run_from_its_tail_is_only_the_closed_control(
    http: httpx.AsyncClient,
) -> None:
    run_id = (await http.post("/workflows/none?wait=result")).json()["runId"]

    async with http.stream("GET", f"/runs/{run_id}?offset={offset_of(1)}&live=sse") as response:
        reader = SseReader(response)
        assert await reader.next_frame() == closed_control(offset_of(1))
        assert await reader.next_frame() is None


# --- Disconnects free their waiters ---------------------------------------------------------


async def raw_get(live_server: LiveServer, target: str) -> tuple[asyncio.StreamReader, Any]:
    """A bare HTTP/1.1 request on its own connection, so the test decides when it drops."""
    reader, writer = await asyncio.open_connection(live_server.host, live_server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {live_server.host}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def assert_waiter_freed(runtime: Runtime, path: str) -> None:
    """The path's waiter goes away promptly and is not registered again afterwards."""
    await wait_until(lambda: path not in waiters(runtime), timeout=2.0)
    settle = time.monotonic() + LONG_POLL_SECONDS + HEARTBEAT_SECONDS
    while time.monotonic() < settle:
        assert path not in waiters(runtime), "a waiter came back after the client left"
        await asyncio.sleep(0.01)


async def test_a_client_leaving_a_long_poll_frees_its_waiter(
    live_server: LiveServer, http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    path = f"runs/{run_id}"
    _, writer = await raw_get(live_server, f"/runs/{run_id}?offset={offset_of(0)}&live=long-poll")
    await wait_until(lambda: path in waiters(runtime))

    writer.close()
    await writer.wait_closed()

    await assert_waiter_freed(runtime, path)
    await finish_paced(controls, runtime, run_id)


async def test_a_client_leaving_an_sse_stream_frees_its_waiter(
    live_server: LiveServer, http: httpx.AsyncClient, runtime: Runtime, controls: Controls
) -> None:
    run_id = await paced_run(http, runtime)
    path = f"runs/{run_id}"
    reader, writer = await raw_get(live_server, f"/runs/{run_id}?offset=-1&live=sse")
    received = b""
    while b"event: control" not in received:
        received += await asyncio.wait_for(reader.read(4096), timeout=3)
    await wait_until(lambda: path in waiters(runtime))

    writer.close()
    await writer.wait_closed()

    await assert_waiter_freed(runtime, path)
    await finish_paced(controls, runtime, run_id)


# --- Cancel (beyond Flue) -------------------------------------------------------------------


async def test_cancel_ends_a_blocked_run_errored_with_run_cancelled(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    run_id = await start_run(http, "blocking")
    await wait_for_length(runtime, run_id, 2)  # run_start, log "waiting"
    cursor = current_cursor(runtime)

    async with http.stream("GET", f"/runs/{run_id}?offset={offset_of(1)}&live=sse") as stream:
        reader = SseReader(stream)
        assert await reader.next_frame() == open_control(offset_of(1), cursor)

        response = await http.post(f"/runs/{run_id}/cancel")

        assert response.status_code == 202
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"runId": run_id, "cancelled": True}
        frames = await non_heartbeat_frames(reader, count=2)
        assert frames[1] == closed_control(offset_of(2))
        assert await reader.next_frame() is None

    [run_end] = json.loads(frames[0].removeprefix("event: data\ndata:"))
    error = {
        "name": "RunCancelledError",
        "message": "The run was cancelled.",
        "type": "run_cancelled",
        "meta": {"runId": run_id},
    }
    assert run_end["type"] == "run_end"
    assert run_end["isError"] is True
    assert run_end["result"] is None
    assert run_end["error"] == error
    record = (await http.get(f"/runs/{run_id}?meta")).json()
    assert record["status"] == "errored"
    assert record["error"] == error
    events = (await http.get(f"/runs/{run_id}")).json()
    assert [event.get("message") for event in events if event["type"] == "log"] == ["waiting"]

    again = await http.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "run_not_active"


async def test_cancel_of_a_wait_result_invocation_answers_its_caller(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    waiting = asyncio.create_task(http.post("/workflows/blocking?wait=result"))
    deadline = time.monotonic() + 3
    while not (active := (await runtime.list_runs(status="active")).runs):
        assert not waiting.done(), "the invocation answered before its run was seen"
        assert time.monotonic() < deadline, "no run was admitted"
        await asyncio.sleep(0.005)
    run_id = active[0].run_id
    await wait_for_length(runtime, run_id, 2)

    assert (await http.post(f"/runs/{run_id}/cancel")).status_code == 202
    response = await waiting

    assert response.status_code == 500
    body = response.json()["error"]
    assert body["type"] == "run_cancelled"
    assert body["meta"] == {"runId": run_id}
