"""The Anthropic SDK's two transports, chosen per provider or by ``FLUE_ANTHROPIC_TRANSPORT``:
a real streamed call over loopback HTTP through each (``flue-actors serve`` uses aiohttp)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from aiohttp import web

from flue_actors.errors import ModelRequestError
from flue_actors.models import AnthropicProvider, ModelRequest, TextDelta
from flue_actors.models._anthropic import TRANSPORT_VARIABLE


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _messages(request: web.Request) -> web.Response:
    body = await request.json()
    assert body["stream"] is True
    text = "echo: " + body["messages"][-1]["content"][0]["text"]
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    }
    stream = b"".join(
        [
            _sse("message_start", {"type": "message_start", "message": message}),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 3},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
    )
    return web.Response(body=stream, content_type="text/event-stream")


@pytest.fixture
async def messages_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/messages", _messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_each_transport_streams_a_turn(messages_url: str, transport: str) -> None:
    provider = AnthropicProvider(api_key="sk-ant-x", base_url=messages_url, transport=transport)  # type: ignore[arg-type]
    request = ModelRequest(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi", "timestamp": 0}]
    )
    try:
        deltas: list[str] = []
        for _ in range(3):  # one client, its connections reused
            response = await provider.complete(
                request, lambda e: deltas.append(e.text) if isinstance(e, TextDelta) else None
            )
            assert response.content == [{"type": "text", "text": "echo: hi"}]
            assert response.usage.output == 3
        assert deltas == ["echo: hi"] * 3
        aiohttp_client = isinstance(provider._client()._client, anthropic.DefaultAioHttpClient)
        assert aiohttp_client is (transport == "aiohttp")
    finally:
        await provider.aclose()


async def test_the_environment_chooses_the_transport_and_a_wrong_name_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRANSPORT_VARIABLE, "aiohttp")
    provider = AnthropicProvider(api_key="sk-ant-x", base_url="http://127.0.0.1:9")
    assert isinstance(provider._client()._client, anthropic.DefaultAioHttpClient)
    await provider.aclose()
    monkeypatch.setenv(TRANSPORT_VARIABLE, "carrier-pigeon")
    with pytest.raises(ModelRequestError) as refused:
        AnthropicProvider(api_key="sk-ant-x")._client()
    assert refused.value.code == "bad_transport"
    assert TRANSPORT_VARIABLE in str(refused.value)


def _spans_enabled(provider: AnthropicProvider) -> bool:
    enabled: bool = provider._client().open_telemetry["traces"]["enabled"]
    return enabled


async def test_the_sdk_builds_no_call_span_when_nothing_could_record_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace

    for name in list(os.environ):
        if name.startswith("ANTHROPIC_OPEN_TELEMETRY") or name == "OTEL_PYTHON_TRACER_PROVIDER":
            monkeypatch.delenv(name)
    # No tracer provider set: OpenTelemetry's proxy, so the SDK's switch turns spans off.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not _spans_enabled(AnthropicProvider(api_key="sk-ant-x"))
    # An explicit option is the SDK's own.
    assert _spans_enabled(AnthropicProvider(api_key="sk-ant-x", open_telemetry={}))
    # A variable of the SDK's names it: its own resolution applies.
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_PROPAGATION", "false")
    assert _spans_enabled(AnthropicProvider(api_key="sk-ant-x"))
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY_PROPAGATION")
    # A tracer provider set by the application: the SDK's default (spans on).
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    assert _spans_enabled(AnthropicProvider(api_key="sk-ant-x"))
