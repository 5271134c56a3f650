"""The run-record contract (reference 1.9-1.10): admission, projection, listing, rebuild."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from ..._events import RunAdmittedEvent, RunError
from ..._jsonvalue import UNSET, JsonValue, Unset
from ..._records import RunPage, RunPointer, RunRecord, fold
from ...errors import StreamClosedError
from ...store import EventStore, StreamMeta, run_stream
from ._base import StoreContractBase, StoreOpener
from ._factories import (
    admission,
    gather_settled,
    iso,
    log_event,
    make_run_id,
    read_all,
    run_end,
    run_start,
)

CARRIER = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
BOOM: RunError = {"name": "Error", "message": "boom"}


async def _get(store: EventStore, run_id: str) -> RunRecord:
    record = await store.get_run(run_id)
    assert record is not None, f"run {run_id} has no record"
    return record


async def _admit(store: EventStore, *headers: RunAdmittedEvent) -> None:
    outcomes = await gather_settled([store.admit_run(h) for h in headers])
    assert outcomes == [True] * len(headers)


def _newest_first(records: list[RunRecord]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r.started_at, r.run_id), reverse=True)
    return [r.run_id for r in ordered]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _cursor(started_at: str, run_id: str) -> str:
    return _b64url(json.dumps({"s": started_at, "r": run_id}, ensure_ascii=False).encode("utf-8"))


async def _page_through(store: EventStore, **query: Any) -> tuple[list[str], list[RunPage]]:
    pages: list[RunPage] = []
    cursor: str | None = None
    for _ in range(1000):
        page = await store.list_runs(cursor=cursor, **query)
        pages.append(page)
        if page.next_cursor is None:
            return [p.run_id for page in pages for p in page.runs], pages
        cursor = page.next_cursor
    raise AssertionError("listing never ended")


# --- Listing --------------------------------------------------------------------------------------


async def _seed(store: EventStore) -> list[RunRecord]:
    """Eight runs over two workflows and all statuses, with startedAt ties broken by runId."""
    plan: list[tuple[int, str, int, str]] = [
        # (n, workflow, startedAt ms, outcome)
        (1, "alpha", 100, "active"),
        (2, "alpha", 300, "completed"),
        (3, "beta", 300, "errored"),
        (4, "beta", 200, "completed"),
        (5, "alpha", 300, "active"),
        (6, "alpha", 50, "errored"),
        (7, "beta", 400, "active"),
        (8, "alpha", 200, "completed"),
    ]
    await _admit(
        store,
        *(admission(make_run_id(n), workflow_name=w, started_at=iso(t)) for n, w, t, _ in plan),
    )
    for n, _, t, outcome in plan:
        run_id = make_run_id(n)
        if outcome == "completed":
            end = run_end(run_id, index=1, duration_ms=n, timestamp=iso(t + n), result=n)
        elif outcome == "errored":
            end = run_end(run_id, index=1, duration_ms=n, timestamp=iso(t + n), error=BOOM)
        else:
            continue
        await store.append(run_stream(run_id), [end], close=True)
    return [await _get(store, make_run_id(n)) for n, *_ in plan]


def _undecodable_cursors() -> list[tuple[str, str]]:
    return [
        ("empty", ""),
        ("garbage", "not a cursor!!"),
        ("non-ascii", "éàü"),
        ("one-char", "a"),
        ("b64-not-json", _b64url(b"this is not json")),
        ("b64-not-utf8", _b64url(b"\xff\xfe\xfd\xfc")),
        ("json-list", _b64url(b'["s", "r"]')),
        ("json-string", _b64url(b'"cursor"')),
        ("json-null", _b64url(b"null")),
        ("json-missing-r", _b64url(b'{"s": "2025-01-01T00:00:00.300Z"}')),
        ("json-number-s", _b64url(b'{"s": 300, "r": "run_x"}')),
        ("json-null-r", _b64url(b'{"s": "2025-01-01T00:00:00.300Z", "r": null}')),
        ("json-deeply-nested", _b64url(b"[" * 100_000)),
    ]


# --- Rebuild and persistence ----------------------------------------------------------------------


async def varied_runs(store: EventStore) -> list[str]:
    """Runs in every state the projection knows, plus streams that are not runs."""
    ids = [make_run_id(n) for n in range(1, 8)]
    a, b, c, d, e, f, g = ids
    await _admit(
        store,
        admission(a, started_at=iso(1)),  # active, input absent
        admission(b, started_at=iso(2), run_input=None, trace_carrier=CARRIER),  # active, null
        admission(c, workflow_name="w2", started_at=iso(3), run_input={"x": [1, 2]}),
        admission(d, started_at=iso(4), run_input="d"),
        admission(e, started_at=iso(5)),
        admission(f, started_at=iso(6)),
    )
    await store.append(run_stream(a), [run_start(a), log_event(a, index=1)])
    await store.append(
        run_stream(c),
        [
            run_start(c, run_input={"x": [1, 2]}),
            run_end(c, index=1, duration_ms=30, result={"ok": 1}),
        ],
        close=True,
    )
    await store.append(
        run_stream(d), [run_start(d), run_end(d, index=1, duration_ms=40, result=None)], close=True
    )
    await store.append(run_stream(e), [run_end(e, index=0, duration_ms=50, error=BOOM)], close=True)
    # Two run_ends on an open stream: the first one must still win after a rebuild.
    await store.append(run_stream(f), [run_end(f, index=0, duration_ms=60, result="first")])
    await store.append(run_stream(f), [run_end(f, index=1, duration_ms=61, error=BOOM)])
    # A run recovered from its lifecycle events alone (no admission header).
    await store.create_stream(run_stream(g))
    await store.append(run_stream(g), [run_start(g, workflow_name="w3", started_at=iso(7))])
    # Streams that hold no run.
    await store.create_stream(run_stream("run_logs_only"))
    await store.append(run_stream("run_logs_only"), [log_event(index=0)])
    await store.create_stream("agents/echo/x")
    await store.append("agents/echo/x", [run_start("run_agent")])
    return ids


# --- Concurrency ----------------------------------------------------------------------------------


async def _write_run(store: EventStore, n: int) -> RunRecord:
    """One run's whole life, as a RunActor writes it: admit, then fenced appends, then the end."""
    run_id = make_run_id(n)
    path = run_stream(run_id)
    header = admission(run_id, workflow_name=f"w{n % 3}", started_at=iso(n // 2), run_input=n)
    assert await store.admit_run(header) is True
    await store.append(
        path, [run_start(run_id, run_input=n), log_event(run_id, index=1)], expected_seq=0
    )
    for i in range(2, 6):
        await store.append(path, [log_event(run_id, index=i)], expected_seq=i)
    end = run_end(run_id, index=6, duration_ms=n, timestamp=iso(1000 + n), result={"n": n})
    await store.append(path, [end], expected_seq=6, close=True)
    expected = fold(header, [run_start(run_id, run_input=n), end])
    assert expected is not None
    return expected


class RunRecordContract(StoreContractBase):
    # --- Admission --------------------------------------------------------------------------------

    async def test_admit_run_creates_active_record_and_stream(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        header = admission(
            run_id,
            workflow_name="summarize",
            started_at=iso(5),
            run_input={"q": 1},
            trace_carrier=CARRIER,
        )
        assert await store.admit_run(header) is True
        record = await _get(store, run_id)
        assert record == RunRecord(
            run_id=run_id,
            workflow_name="summarize",
            status="active",
            started_at=iso(5),
            input={"q": 1},
            trace_carrier=CARRIER,
        )
        assert record.to_wire() == {
            "runId": run_id,
            "workflowName": "summarize",
            "status": "active",
            "startedAt": iso(5),
            "input": {"q": 1},
            "traceCarrier": CARRIER,
        }
        assert await store.stream_meta(run_stream(run_id)) == StreamMeta("-1", 0, closed=False)

    async def test_admission_header_is_not_served_in_the_stream(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, run_input="x"))
        page = await store.read(run_stream(run_id))
        assert page.events == []
        assert page.next_offset == "-1"
        start = run_start(run_id, run_input="x")
        assert await store.append(run_stream(run_id), [start]) == [
            "0000000000000000_0000000000000000"
        ]
        assert [e.data for e in await read_all(store, run_stream(run_id))] == [start]

    async def test_admit_run_is_first_writer_wins(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        assert (
            await store.admit_run(admission(run_id, run_input="first", started_at=iso(1))) is True
        )
        await store.append(run_stream(run_id), [run_start(run_id, run_input="first")])
        second = admission(
            run_id,
            workflow_name="other",
            run_input="second",
            started_at=iso(9),
            trace_carrier=CARRIER,
        )
        assert await store.admit_run(second) is False
        record = await _get(store, run_id)
        assert record == RunRecord(run_id, "echo", "active", iso(1), input="first")
        assert await store.stream_meta(run_stream(run_id)) == StreamMeta(
            "0000000000000000_0000000000000000", 1, closed=False
        )

    async def test_admit_run_after_end_does_not_resurrect(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id))
        await store.append(
            run_stream(run_id), [run_end(run_id, index=1, duration_ms=3)], close=True
        )
        ended = await _get(store, run_id)
        assert await store.admit_run(admission(run_id, run_input="again")) is False
        assert await _get(store, run_id) == ended
        assert ended.status == "completed"

    async def test_concurrent_admissions_of_one_run_have_one_winner(
        self, store: EventStore
    ) -> None:
        run_id = make_run_id(1)
        headers = [admission(run_id, run_input=i) for i in range(5)]
        outcomes = await gather_settled([store.admit_run(h) for h in headers])
        assert sorted(outcomes) == [False, False, False, False, True]
        winner = outcomes.index(True)
        assert (await _get(store, run_id)).input == winner

    async def test_unserializable_admission_raises_and_admits_nothing(
        self, store: EventStore
    ) -> None:
        run_id = make_run_id(1)
        header = admission(run_id)
        header["input"] = {"bad": {1, 2}}  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            await store.admit_run(header)
        assert await store.get_run(run_id) is None
        assert await store.stream_meta(run_stream(run_id)) is None

    @pytest.mark.parametrize(
        ("run_input", "wire"),
        [
            (UNSET, {}),
            (None, {"input": None}),
            (0, {"input": 0}),
            ("", {"input": ""}),
            ([], {"input": []}),
            ({"nested": [None, {"k": "v"}]}, {"input": {"nested": [None, {"k": "v"}]}}),
        ],
        ids=["absent", "null", "zero", "empty-string", "empty-list", "object"],
    )
    async def test_input_absent_and_null_stay_distinct(
        self, store: EventStore, run_input: JsonValue | Unset, wire: dict[str, Any]
    ) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, run_input=run_input))
        record = await _get(store, run_id)
        if run_input is UNSET:
            assert record.input is UNSET
        else:
            assert record.input is not UNSET
            assert record.input == run_input
        expected = {
            "runId": run_id,
            "workflowName": "echo",
            "status": "active",
            "startedAt": iso(0),
        }
        assert record.to_wire() == expected | wire
        # Ending the run keeps the distinction.
        await store.append(
            run_stream(run_id), [run_end(run_id, index=1, duration_ms=1)], close=True
        )
        ended = await _get(store, run_id)
        assert ("input" in ended.to_wire()) is (run_input is not UNSET)
        assert ended.input == record.input

    async def test_record_without_trace_carrier_omits_it(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id))
        record = await _get(store, run_id)
        assert record.trace_carrier is None
        assert "traceCarrier" not in record.to_wire()

    async def test_get_run_of_unknown_run_is_none(self, store: EventStore) -> None:
        assert await store.get_run("run_missing") is None

    # --- Projection of run_end --------------------------------------------------------------------

    @pytest.mark.parametrize(
        "result",
        [None, 0, False, "", [], {}, "done", {"answer": 42, "items": [1, 2.5, None]}],
        ids=[
            "null",
            "zero",
            "false",
            "empty-string",
            "empty-list",
            "empty-object",
            "string",
            "object",
        ],
    )
    async def test_successful_run_end_projects_completed(
        self, store: EventStore, result: JsonValue
    ) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, started_at=iso(0), run_input={"a": 1}))
        events = [
            run_start(run_id, run_input={"a": 1}),
            log_event(run_id, index=1),
            run_end(run_id, index=2, duration_ms=1234, timestamp=iso(1234), result=result),
        ]
        await store.append(run_stream(run_id), events, close=True)
        record = await _get(store, run_id)
        assert record == RunRecord(
            run_id=run_id,
            workflow_name="echo",
            status="completed",
            started_at=iso(0),
            input={"a": 1},
            ended_at=iso(1234),
            is_error=False,
            duration_ms=1234,
            result=result,
        )
        assert record.result is not UNSET
        wire = record.to_wire()
        assert "result" in wire
        assert wire["result"] == result
        assert "error" not in wire
        assert wire["endedAt"] == iso(1234)
        assert wire["isError"] is False

    async def test_errored_run_end_projects_errored_without_result(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, started_at=iso(0)))
        error: RunError = {"name": "ActionInputValidationError", "message": "bad input"}
        end = run_end(run_id, index=1, duration_ms=77, timestamp=iso(77), error=error)
        assert end["result"] is None  # Flue emits result: null on the error path
        await store.append(run_stream(run_id), [end], close=True)
        record = await _get(store, run_id)
        assert record.status == "errored"
        assert record.is_error is True
        assert record.ended_at == iso(77)
        assert record.duration_ms == 77
        assert record.result is UNSET
        assert record.error == error
        wire = record.to_wire()
        assert "result" not in wire
        assert wire["error"] == error
        assert wire["isError"] is True

    async def test_first_run_end_wins_within_one_append(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id))
        first = run_end(run_id, index=1, duration_ms=10, timestamp=iso(10), result="first")
        second = run_end(run_id, index=2, duration_ms=20, timestamp=iso(20), error=BOOM)
        await store.append(run_stream(run_id), [first, second])
        record = await _get(store, run_id)
        assert (record.status, record.result, record.ended_at, record.duration_ms) == (
            "completed",
            "first",
            iso(10),
            10,
        )

    async def test_later_run_end_on_open_stream_does_not_overwrite(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id))
        await store.append(
            run_stream(run_id), [run_end(run_id, index=1, duration_ms=10, error=BOOM)]
        )
        ended = await _get(store, run_id)
        await store.append(run_stream(run_id), [run_end(run_id, index=2, duration_ms=20, result=1)])
        assert await _get(store, run_id) == ended
        assert ended.status == "errored"

    async def test_append_after_closing_run_end_fails(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        path = run_stream(run_id)
        await store.admit_run(admission(run_id))
        first = run_end(run_id, index=1, duration_ms=10, timestamp=iso(10), result="first")
        await store.append(path, [run_start(run_id), first], close=True)
        ended = await _get(store, run_id)
        second = run_end(run_id, index=2, duration_ms=20, timestamp=iso(20), error=BOOM)
        with pytest.raises(StreamClosedError):
            await store.append(path, [second])
        with pytest.raises(StreamClosedError):
            await store.append(path, [second], close=True)
        assert await _get(store, run_id) == ended
        assert [e.data for e in await read_all(store, path)] == [run_start(run_id), first]

    async def test_non_lifecycle_events_leave_record_untouched(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, run_input="in"))
        before = await _get(store, run_id)
        idle = {"v": 3, "eventIndex": 3, "timestamp": iso(3), "runId": run_id, "type": "idle"}
        await store.append(
            run_stream(run_id), [log_event(run_id, index=1), log_event(run_id, index=2)]
        )
        await store.append(run_stream(run_id), [idle])
        assert await _get(store, run_id) == before

    async def test_lifecycle_events_without_header_recreate_the_record(
        self, store: EventStore
    ) -> None:
        run_id = make_run_id(1)
        path = run_stream(run_id)
        await store.create_stream(path)
        assert await store.get_run(run_id) is None
        start = run_start(run_id, workflow_name="recovered", started_at=iso(3), run_input=None)
        await store.append(path, [start])
        record = await _get(store, run_id)
        assert record == fold(None, [start])
        assert (record.workflow_name, record.started_at, record.status) == (
            "recovered",
            iso(3),
            "active",
        )
        assert record.input is None

    async def test_list_runs_newest_first(self, store: EventStore) -> None:
        records = await _seed(store)
        page = await store.list_runs()
        assert [p.run_id for p in page.runs] == _newest_first(records)
        assert [p.run_id for p in page.runs] == [make_run_id(n) for n in (7, 5, 3, 2, 8, 4, 1, 6)]
        assert page.next_cursor is None
        assert page.to_wire().keys() == {"runs"}
        by_id = {r.run_id: r for r in records}
        assert page.runs == [by_id[run_id].pointer() for run_id in _newest_first(records)]

    async def test_list_runs_pointers_never_carry_payloads(self, store: EventStore) -> None:
        run_id = make_run_id(1)
        await store.admit_run(admission(run_id, run_input="secret", trace_carrier=CARRIER))
        await store.append(
            run_stream(run_id), [run_end(run_id, index=1, duration_ms=9, error=BOOM)], close=True
        )
        [pointer] = (await store.list_runs()).runs
        assert pointer == RunPointer(
            run_id=run_id,
            workflow_name="echo",
            status="errored",
            started_at=iso(0),
            ended_at=iso(1),
            duration_ms=9,
            is_error=True,
        )
        assert pointer.to_wire().keys() == {
            "runId",
            "workflowName",
            "status",
            "startedAt",
            "endedAt",
            "durationMs",
            "isError",
        }

    async def test_list_runs_of_empty_store(self, store: EventStore) -> None:
        page = await store.list_runs()
        assert page == RunPage(runs=[], next_cursor=None)
        assert page.to_wire() == {"runs": []}

    @pytest.mark.parametrize(
        ("status", "workflow", "expected"),
        [
            ("active", None, [7, 5, 1]),
            ("completed", None, [2, 8, 4]),
            ("errored", None, [3, 6]),
            (None, "alpha", [5, 2, 8, 1, 6]),
            (None, "beta", [7, 3, 4]),
            ("completed", "alpha", [2, 8]),
            ("active", "beta", [7]),
            ("errored", "gamma", []),
            (None, "alph", []),
        ],
    )
    async def test_list_runs_filters_are_and_combined(
        self, store: EventStore, status: Any, workflow: str | None, expected: list[int]
    ) -> None:
        await _seed(store)
        page = await store.list_runs(status=status, workflow_name=workflow)
        assert [p.run_id for p in page.runs] == [make_run_id(n) for n in expected]
        assert page.next_cursor is None

    async def test_list_runs_limit(self, store: EventStore) -> None:
        headers = [admission(make_run_id(n), started_at=iso(n)) for n in range(1005)]
        await _admit(store, *headers)
        newest = [make_run_id(n) for n in range(1004, -1, -1)]
        for limit, count in [(None, 100), (0, 100), (-1, 100), (-1000, 100), (1, 1), (7, 7)]:
            page = await store.list_runs(limit=limit)
            assert [p.run_id for p in page.runs] == newest[:count], limit
            assert page.next_cursor is not None, limit
        for limit in (1000, 1001, 5000):
            page = await store.list_runs(limit=limit)
            assert [p.run_id for p in page.runs] == newest[:1000], limit
            assert page.next_cursor is not None
            rest = await store.list_runs(limit=limit, cursor=page.next_cursor)
            assert [p.run_id for p in rest.runs] == newest[1000:]
            assert rest.next_cursor is None
        page = await store.list_runs(limit=1005)
        assert len(page.runs) == 1000

    @pytest.mark.parametrize("limit", [1, 2, 3, 7, 8, 100])
    async def test_cursor_paging_visits_every_run_once(self, store: EventStore, limit: int) -> None:
        records = await _seed(store)
        seen, pages = await _page_through(store, limit=limit)
        assert seen == _newest_first(records)
        assert len(set(seen)) == len(seen)
        assert all(len(page.runs) == limit for page in pages[:-1])
        assert 1 <= len(pages[-1].runs) <= limit
        assert "nextCursor" not in pages[-1].to_wire()
        assert all(page.next_cursor is not None for page in pages[:-1])

    @pytest.mark.parametrize(
        ("status", "workflow"), [("completed", None), (None, "alpha"), ("active", "alpha")]
    )
    async def test_cursor_paging_with_filters(
        self, store: EventStore, status: Any, workflow: str | None
    ) -> None:
        records = await _seed(store)
        seen, _ = await _page_through(store, limit=1, status=status, workflow_name=workflow)
        wanted = [
            r
            for r in records
            if (status is None or r.status == status)
            and (workflow is None or r.workflow_name == workflow)
        ]
        assert seen == _newest_first(wanted)

    async def test_next_cursor_absent_when_last_page_is_full(self, store: EventStore) -> None:
        await _seed(store)
        first = await store.list_runs(limit=4)
        assert first.next_cursor is not None
        second = await store.list_runs(limit=4, cursor=first.next_cursor)
        assert len(second.runs) == 4
        assert second.next_cursor is None
        assert second.to_wire().keys() == {"runs"}

    async def test_cursor_is_base64url_json_of_last_pointer(self, store: EventStore) -> None:
        await _seed(store)
        page = await store.list_runs(limit=3)
        cursor = page.next_cursor
        assert cursor is not None
        assert "=" not in cursor
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        last = page.runs[-1]
        assert decoded == {"s": last.started_at, "r": last.run_id}

    async def test_handmade_cursor_lists_strictly_after_its_position(
        self, store: EventStore
    ) -> None:
        records = await _seed(store)
        order = _newest_first(records)
        # Exactly at run 3 (startedAt 300): continues after it, with the runId tie-break.
        page = await store.list_runs(cursor=_cursor(iso(300), make_run_id(3)))
        assert [p.run_id for p in page.runs] == order[order.index(make_run_id(3)) + 1 :]
        # A position between runs that names no run at all.
        page = await store.list_runs(cursor=_cursor(iso(250), "run_zzz"))
        assert [p.run_id for p in page.runs] == [make_run_id(n) for n in (8, 4, 1, 6)]
        # Before everything: nothing left.
        page = await store.list_runs(cursor=_cursor(iso(0), ""))
        assert page == RunPage([], None)
        # Padded cursors decode the same way.
        padded = base64.urlsafe_b64encode(
            json.dumps({"s": iso(300), "r": make_run_id(3)}).encode()
        ).decode()
        assert [p.run_id for p in (await store.list_runs(cursor=padded)).runs] == order[3:]

    @pytest.mark.parametrize(
        "cursor", [c for _, c in _undecodable_cursors()], ids=[i for i, _ in _undecodable_cursors()]
    )
    async def test_undecodable_cursor_is_ignored(self, store: EventStore, cursor: str) -> None:
        await _seed(store)
        expected = await store.list_runs(limit=3)
        assert await store.list_runs(limit=3, cursor=cursor) == expected
        assert await store.list_runs(limit=3, cursor=cursor, status="completed") == (
            await store.list_runs(limit=3, status="completed")
        )

    async def test_non_ascii_names_and_ids_list_and_page(self, store: EventStore) -> None:
        workflow = "résumé-ワークフロー-🚀"
        ids = [f"run_é{n}-名前-🎉" for n in range(5)]
        await _admit(
            store,
            *(admission(run_id, workflow_name=workflow, started_at=iso(1)) for run_id in ids),
            admission(make_run_id(9), workflow_name="plain", started_at=iso(2)),
        )
        seen, pages = await _page_through(store, limit=2, workflow_name=workflow)
        assert seen == sorted(ids, reverse=True)
        cursor = pages[0].next_cursor
        assert cursor is not None
        assert cursor.isascii()
        decoded = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        )
        assert decoded == {"s": iso(1), "r": seen[1]}
        record = await _get(store, ids[0])
        assert record.workflow_name == workflow
        everything, _ = await _page_through(store, limit=1)
        assert everything == [make_run_id(9), *sorted(ids, reverse=True)]

    async def test_rebuild_records_reproduces_every_record(self, store: EventStore) -> None:
        ids = await varied_runs(store)
        before = {run_id: await store.get_run(run_id) for run_id in ids}
        listing = await store.list_runs()
        assert all(record is not None for record in before.values())
        assert {r.status for r in before.values() if r is not None} == {
            "active",
            "completed",
            "errored",
        }
        assert await store.rebuild_records() == len(ids)
        assert {run_id: await store.get_run(run_id) for run_id in ids} == before
        assert await store.list_runs() == listing
        assert await store.get_run("run_logs_only") is None
        assert await store.get_run("run_agent") is None
        # Idempotent.
        assert await store.rebuild_records() == len(ids)
        assert {run_id: await store.get_run(run_id) for run_id in ids} == before

    async def test_rebuild_records_of_empty_store(self, store: EventStore) -> None:
        assert await store.rebuild_records() == 0
        assert await store.list_runs() == RunPage([], None)

    async def test_reopened_store_sees_the_same_records_and_events(
        self, store_opener: StoreOpener
    ) -> None:
        first = store_opener()
        ids = await varied_runs(first)
        records = {run_id: await _get(first, run_id) for run_id in ids}
        paths = [*(run_stream(run_id) for run_id in ids), "agents/echo/x"]
        streams = {path: await read_all(first, path) for path in paths}
        metas = {path: await first.stream_meta(path) for path in paths}
        listing = await first.list_runs(limit=3)
        await first.close()

        second = store_opener()
        assert {run_id: await second.get_run(run_id) for run_id in ids} == records
        assert {path: await read_all(second, path) for path in paths} == streams
        assert {path: await second.stream_meta(path) for path in paths} == metas
        assert await second.list_runs(limit=3) == listing
        # Writing carries on where the first store stopped, and closed streams stay closed.
        a = ids[0]
        offsets = await second.append(run_stream(a), [run_end(a, index=2, duration_ms=1, result=7)])
        assert offsets == ["0000000000000000_0000000000000002"]
        assert (await _get(second, a)) == replace(
            records[a], status="completed", ended_at=iso(2), is_error=False, duration_ms=1, result=7
        )
        with pytest.raises(StreamClosedError):
            await second.append(run_stream(ids[2]), [log_event(index=9)])
        assert await second.admit_run(admission(a)) is False

    async def test_many_runs_written_at_once_all_land(self, store: EventStore) -> None:
        expected = await gather_settled([_write_run(store, n) for n in range(60)])
        assert all(isinstance(r, RunRecord) for r in expected), expected
        for record in expected:
            assert await store.get_run(record.run_id) == record
            assert await store.stream_meta(run_stream(record.run_id)) == StreamMeta(
                "0000000000000000_0000000000000006", 7, closed=True
            )
        seen, _ = await _page_through(store, limit=7)
        assert seen == _newest_first(expected)
        assert await store.rebuild_records() == 60
        assert [await store.get_run(r.run_id) for r in expected] == expected

    async def test_listing_while_runs_are_written_stays_consistent(self, store: EventStore) -> None:
        writers = asyncio.ensure_future(gather_settled([_write_run(store, n) for n in range(40)]))
        passes = 0
        while not writers.done() or passes < 2:
            passes += 1
            seen: list[tuple[str, str]] = []
            cursor: str | None = None
            while True:
                page = await store.list_runs(limit=5, cursor=cursor, status=None)
                for pointer in page.runs:
                    assert pointer.status in ("active", "completed")
                    if pointer.status == "completed":
                        # A completed pointer means the whole record is there.
                        record = await _get(store, pointer.run_id)
                        assert record.result == {"n": int(pointer.run_id[4:])}
                    seen.append((pointer.started_at, pointer.run_id))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            # Keyset paging: strictly newest first, never a run twice, even while runs are admitted.
            assert seen == sorted(set(seen), reverse=True)
            await asyncio.sleep(0)
        expected = await writers
        assert all(isinstance(r, RunRecord) for r in expected), expected
        final, _ = await _page_through(store, limit=100)
        assert final == _newest_first(expected)
        completed = await store.list_runs(status="completed", limit=1000)
        assert len(completed.runs) == 40

    async def test_names_with_control_characters_order_by_code_point(
        self, store: EventStore
    ) -> None:
        ids = ["run_\x00", "run_\x01", "run_\x01\x00", "run_\x02", "run_", "run_a\x00b", "run_a"]
        await _admit(
            store,
            *(admission(run_id, workflow_name="w\x00\x01", started_at=iso(1)) for run_id in ids),
        )
        seen, _ = await _page_through(store, limit=2, workflow_name="w\x00\x01")
        assert seen == sorted(ids, reverse=True)
        assert (await store.list_runs(workflow_name="w\x00")).runs == []
        record = await _get(store, "run_a\x00b")
        assert (record.run_id, record.workflow_name) == ("run_a\x00b", "w\x00\x01")
        end = run_end("run_a\x00b", index=0, duration_ms=1, timestamp="t\x00", result="\x00")
        await store.append(run_stream("run_a\x00b"), [end], close=True)
        ended = await _get(store, "run_a\x00b")
        assert (ended.status, ended.ended_at, ended.result) == ("completed", "t\x00", "\x00")
        assert await store.rebuild_records() == len(ids)
        assert await _get(store, "run_a\x00b") == ended
