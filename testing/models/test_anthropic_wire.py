"""What the Anthropic provider puts on the wire, on each of the SDK's transports, over loopback
HTTP: the body it built, as its bytes, through the SDK's request method (its headers, auth and
status errors); and messages.create itself when the SDK's spans or warnings are wanted."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest
from aiohttp import web
from anthropic._data import DEPRECATED_MODELS
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flue_actors._jsonvalue import dumps
from flue_actors.errors import ModelRequestError
from flue_actors.models import AnthropicProvider, ModelRequest, ToolSpec
from flue_actors.models._anthropic import request_body, request_params
from flue_actors.testing._messages_wire import (
    STREAM_HEADERS,
    JsonAnswer,
    MessagesScript,
    error_answer,
    summary_reply,
)

TRANSPORTS = ["httpx", "aiohttp"]


@dataclass
class Recorded:
    """Every request the server saw, as bytes and headers; failures to answer with, in order."""

    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: list[JsonAnswer] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Recorded]]:
    recorded = Recorded()
    script = MessagesScript()

    async def messages(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorded.bodies.append(raw)
        recorded.paths.append(request.path)
        recorded.headers.append({name.lower(): value for name, value in request.headers.items()})
        if recorded.failures:
            failure = recorded.failures.pop(0)
            return web.json_response(
                failure.body, status=failure.status, headers=dict(failure.headers)
            )
        body = json.loads(raw)
        answer = script.build(summary_reply(body), body)
        reply = web.StreamResponse(headers=dict(STREAM_HEADERS))
        await reply.prepare(request)
        for event in answer.events:  # type: ignore[union-attr]
            await reply.write(event)
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/proxy/v1/messages", messages)  # a base URL with a path
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", recorded
    finally:
        await runner.cleanup()


def _request(model: str = "claude-haiku-4-5") -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[{"role": "user", "content": "Résumé in “quotes” ✓", "timestamp": 0}],
        system_prompt="Be brief.",
        tools=[ToolSpec(name="add", description="Add.", parameters={"properties": {}})],
        thinking_level="low",
    )


def _ignore(_event: object) -> None:
    return None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("base_path", ["", "/proxy", "/proxy/"])
async def test_the_body_sent_is_the_one_built_with_the_headers_messages_create_sends(
    server: tuple[str, Recorded], transport: Any, base_path: str
) -> None:
    url, recorded = server
    provider = AnthropicProvider(
        api_key="sk-ant-wire", base_url=url + base_path, transport=transport
    )
    request = _request()
    try:
        response = await provider.complete(request, _ignore)
        assert response.content == [{"type": "text", "text": "SUMMARY: Résumé in “quotes” ✓"}]
        # The same request through the SDK's typed method, on the same client.
        stream = await provider.sdk_client().messages.create(**request_params(request), stream=True)
        async with stream:
            async for _ in stream:
                pass
    finally:
        await provider.aclose()
    ours, theirs = recorded.bodies
    assert recorded.paths == [base_path.rstrip("/") + "/v1/messages"] * 2
    assert ours == request_body(request)
    assert json.loads(ours) == json.loads(theirs) == {**request_params(request), "stream": True}
    # Encoded as the SDK's encoder writes it (compact, UTF-8 rather than ASCII escapes): only
    # the order of the keys differs.
    assert "Résumé".encode() in ours
    assert len(ours) == len(theirs)
    assert recorded.headers[0] == recorded.headers[1]
    assert recorded.headers[0]["anthropic-version"]
    assert "sk-ant-wire" in (
        recorded.headers[0].get("x-api-key") or recorded.headers[0]["authorization"]
    )
    assert recorded.headers[0]["content-type"] == "application/json"


def test_the_body_is_the_params_and_stream_with_each_tools_json_made_once() -> None:
    shared = ToolSpec(name="add", description="Add \ud800.", parameters={"properties": {}})
    other = ToolSpec(name="sub", description="Subtract.", parameters={"type": "object"})
    first = _request()
    first = ModelRequest(model=first.model, messages=first.messages, tools=[shared, other])
    again = ModelRequest(model=first.model, messages=[*first.messages], tools=[other, shared])
    body = request_body(first)
    # Valid UTF-8 even with a lone surrogate (escaped, as the event log writes it).
    assert json.loads(body.decode("utf-8")) == {**request_params(first), "stream": True}
    assert json.loads(body)["tools"][0]["input_schema"] == {"properties": {}, "type": "object"}
    # A second turn with the same specs, in another order: their JSON is reused, in order.
    assert [tool["name"] for tool in json.loads(request_body(again))["tools"]] == ["sub", "add"]
    assert request_body(first) == body
    # The JSON the event log's encoder writes for the same object, keys in this order.
    assert body == dumps(json.loads(body)).encode()
    assert list(json.loads(body))[-2:] == ["stream", "tools"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(400, "invalid_request_error", False), (429, "rate_limited", True), (529, "overloaded", True)],
)
async def test_status_errors_are_the_sdks_typed_errors(
    server: tuple[str, Recorded], transport: Any, status: int, code: str, transient: bool
) -> None:
    url, recorded = server
    kinds = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}
    recorded.failures.append(error_answer(status, kinds[status], "no", {"retry-after": "3"}))
    provider = AnthropicProvider(api_key="sk-ant-wire", base_url=url, transport=transport)
    try:
        with pytest.raises(ModelRequestError) as failed:
            await provider.complete(_request(), _ignore)
    finally:
        await provider.aclose()
    assert failed.value.code == code
    assert failed.value.transient is transient
    assert isinstance(failed.value.__cause__, anthropic.APIStatusError)
    assert failed.value.__cause__.status_code == status
    assert failed.value.retry_after == (3.0 if status == 429 else None)
    assert len(recorded.bodies) == 1  # the SDK's own retries stay off


async def test_a_model_the_sdk_warns_about_goes_through_messages_create(
    server: tuple[str, Recorded],
) -> None:
    url, recorded = server
    deprecated = sorted(DEPRECATED_MODELS)[0]
    provider = AnthropicProvider(api_key="sk-ant-wire", base_url=url)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await provider.complete(_request(deprecated), _ignore)
    finally:
        await provider.aclose()
    assert DeprecationWarning in [w.category for w in caught if deprecated in str(w.message)]
    assert json.loads(recorded.bodies[0])["model"] == deprecated


async def test_with_spans_on_calls_go_through_messages_create_and_are_traced(
    server: tuple[str, Recorded],
) -> None:
    url, recorded = server
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider = AnthropicProvider(
        api_key="sk-ant-wire",
        base_url=url,
        open_telemetry={"tracer_provider": tracer_provider},
    )
    try:
        response = await provider.complete(_request(), _ignore)
    finally:
        await provider.aclose()
    assert response.stop_reason == "stop"
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    # messages.create names and describes its span; the generic request method would not.
    assert spans[0].attributes is not None
    assert spans[0].attributes.get("gen_ai.request.model") == "claude-haiku-4-5"
    assert len(recorded.bodies) == 1
