"""``Idempotency-Key`` on ``POST /workflows/{name}`` (issue 12.4) and ``POST
/workflows/{name}/batch`` (issue 13.6), through the gateway, on SQLite and PostgreSQL, and the
Python client's ``idempotency_key=``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from store.conftest import drop_scratch_schemas, open_backend

from flue_actors import AsyncFlueClient, FlueClient, ModelRegistry, Runtime
from flue_actors.client import FlueApiError
from flue_actors.gateway import create_app

from .conftest import Controls, asgi_client, build_workflows


@pytest_asyncio.fixture(params=["sqlite-file", "postgres"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    controls = Controls()
    runtime = Runtime(
        build_workflows(controls),
        store=open_backend(request.param, tmp_path),
        models=ModelRegistry(override="fake/echo"),
        env={},
    )
    app = create_app(runtime)
    try:
        async with asgi_client(app) as client:
            yield runtime, client
    finally:
        controls.release.set()
        await asyncio.wait_for(runtime.close(), timeout=10)
        await drop_scratch_schemas()


async def test_a_repeated_idempotency_key_answers_the_same_run(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, client = served
    headers = {"idempotency-key": "order-1"}
    first = await client.post("/workflows/echo", json={"text": "hi"}, headers=headers)
    assert first.status_code == 202, first.text
    again = await client.post(
        "/workflows/echo", json={"text": "hi"}, headers=headers, params={"wait": "result"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["runId"] == first.json()["runId"]
    conflict = await client.post("/workflows/echo", json={"text": "other"}, headers=headers)
    assert conflict.status_code == 409
    error = conflict.json()["error"]
    assert error["type"] == "idempotency_key_conflict"
    assert error["meta"]["runId"] == first.json()["runId"]
    assert len((await runtime.list_runs(workflow_name="echo")).runs) == 1


async def test_concurrent_requests_with_one_key_make_one_run(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, client = served
    answers = await asyncio.gather(
        *(
            client.post("/workflows/echo", json={"text": "x"}, headers={"idempotency-key": "k"})
            for _ in range(8)
        )
    )
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["runId"] for answer in answers}) == 1
    assert len((await runtime.list_runs(workflow_name="echo")).runs) == 1


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_an_unusable_key_is_400_with_no_run(
    served: tuple[Runtime, httpx.AsyncClient], key: str
) -> None:
    runtime, client = served
    answer = await client.post(
        "/workflows/echo", json={"text": "x"}, headers={"idempotency-key": key}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "idempotency_key_invalid"
    assert (await runtime.list_runs()).runs == []


async def test_the_python_client_sends_the_key(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _runtime, client = served
    transport = client._transport  # the app's ASGI transport
    async with AsyncFlueClient("http://gateway.test", transport=transport) as flue:
        first = await flue.workflows.invoke("echo", {"text": "a"}, idempotency_key="c1")
        second = await flue.workflows.invoke(
            "echo", {"text": "a"}, idempotency_key="c1", wait="result"
        )
        assert second.run_id == first.run_id
        with pytest.raises(FlueApiError) as raised:
            await flue.workflows.invoke("echo", {"text": "b"}, idempotency_key="c1")
        assert raised.value.status == 409
        assert raised.value.type == "idempotency_key_conflict"


def test_the_sync_client_sends_the_key() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"runId": "run_01JZ0000000000000000000000"})

    with FlueClient("http://gateway.test", transport=httpx.MockTransport(answer)) as flue:
        flue.workflows.invoke("echo", {"text": "a"}, idempotency_key="c1")
        flue.workflows.invoke("echo", {"text": "a"})
    assert [request.headers.get("idempotency-key") for request in sent] == ["c1", None]


async def test_batch_answers_run_ids_and_per_item_errors_in_order(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, client = served
    items = [
        {"input": {"text": "a"}, "key": "a"},
        {"input": {"wrong": 1}},
        {"input": {"text": "b"}},
        {"input": {"text": "changed"}, "key": "a"},
        {"input": {"text": "a"}, "key": "a"},
    ]
    answer = await client.post("/workflows/echo/batch", json=items)
    assert answer.status_code == 202, answer.text
    runs = answer.json()["runs"]
    assert [sorted(run) for run in runs] == [["runId"], ["error"], ["runId"], ["error"], ["runId"]]
    assert runs[1]["error"]["type"] == "action_input_validation"
    assert runs[3]["error"]["type"] == "idempotency_key_conflict"
    assert runs[4]["runId"] == runs[0]["runId"]
    for run in (runs[0], runs[2]):
        assert (await runtime.wait(run["runId"], timeout=5)).status == "completed"
    assert len((await runtime.list_runs(workflow_name="echo")).runs) == 2


async def test_batch_takes_ndjson_and_refuses_a_bad_line_alone(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _runtime, client = served
    body = b'{"input": {"text": "a"}}\n{not json\n\n{"input": {"text": "b"}, "key": "kb"}\n'
    answer = await client.post(
        "/workflows/echo/batch", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert answer.status_code == 202, answer.text
    runs = answer.json()["runs"]
    assert len(runs) == 3
    assert runs[1]["error"]["type"] == "invalid_json"
    assert runs[1]["error"]["message"].startswith("Line 2 ")
    assert "runId" in runs[0]
    assert "runId" in runs[2]


async def test_batch_is_behind_the_route_dependency(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, client = served
    refused = await client.post("/workflows/guarded/batch", json=[{}])
    assert refused.status_code in (401, 403), refused.text
    hidden = await client.post("/workflows/hidden/batch", json=[{}])
    assert hidden.status_code == 404
    assert (await runtime.list_runs()).runs == []
    not_array = await client.post("/workflows/echo/batch", json={"input": {}})
    assert not_array.status_code == 400
