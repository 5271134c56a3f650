"""``anthropic_api``: the Anthropic Messages API emulated at the HTTP layer (respx), so tests
run the real :class:`~flue_actors.models.AnthropicProvider`, SDK and streaming included.

The anthropic SDK (2.x) talks through ``httpx2``, which respx does not patch; requests to the
emulated base URL are bridged from ``httpx2`` into a respx router, and every other ``httpx2``
request is refused unless it goes to a loopback address. The router also guards ``httpx``
itself the same way. Nothing reaches the network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import respx

from ..models import AnthropicProvider
from .messages_wire import (
    STREAM_HEADERS,
    FailureKind,
    JsonAnswer,
    MessagesScript,
    Stall,
    StreamAnswer,
    error_answer,
)

__all__ = ["AnthropicApi", "AnthropicApiExhaustedError"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AnthropicApiExhaustedError(AssertionError):
    """The code under test made more Messages API calls than the test scripted."""


class AnthropicApi:
    """A scripted Messages API at ``base_url`` (a loopback placeholder nothing listens on).

    ``reply(...)`` and ``fail(...)`` queue answers in order, as ``FakeModel`` does;
    ``requests`` holds every request body (parsed JSON), ``headers`` their headers. A call
    beyond the script is answered with an error and recorded in ``exhausted``; the fixture
    re-raises it at teardown so the test fails loudly. The answers themselves are built by
    :class:`~flue_actors.testing.messages_wire.MessagesScript`, as the out-of-process
    ``messages_server`` builds them.
    """

    def __init__(
        self, *, base_url: str = "http://127.0.0.1:9", api_key: str = "sk-ant-test"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.exhausted: AnthropicApiExhaustedError | None = None
        self.streams_closed = 0
        self._script = MessagesScript()
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self.router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
        self.router.post(f"{self.base_url}/v1/messages").mock(side_effect=self._handle)
        self.router.route(host=self._host, port=self._port).respond(
            404, json={"type": "error", "error": {"type": "not_found_error", "message": "?"}}
        )
        self.router.route(host__in=_LOOPBACK).pass_through()
        self._original: Any = None

    @property
    def provider(self) -> AnthropicProvider:
        """A provider aimed at this emulation."""
        return AnthropicProvider(api_key=self.api_key, base_url=self.base_url)

    # --- the script ---------------------------------------------------------------------------

    def reply(
        self,
        text: str = "",
        *,
        tool_calls: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]] = (),
        thinking: str | None = None,
        chunks: Sequence[str] | None = None,
        usage: dict[str, int] | None = None,
        stop_reason: str | None = None,
        model: str | None = None,
    ) -> AnthropicApi:
        """Queue one assistant message. Tool calls are ``(name, input)`` (ids ``toolu_1``, ...)
        or ``(name, input, id)``; ``chunks`` splits the text into deltas; ``usage`` uses the
        API's names (``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
        ``cache_creation_input_tokens``)."""
        self._script.reply(
            text,
            tool_calls=tool_calls,
            thinking=thinking,
            chunks=chunks,
            usage=usage,
            stop_reason=stop_reason,
            model=model,
        )
        return self

    def fail(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        kind: FailureKind = "status",
        after_chunks: int = 0,
        message: str | None = None,
    ) -> AnthropicApi:
        """Queue one failure: an HTTP error ``status`` (with a ``retry-after`` header when
        given), ``kind="context_overflow"`` (400, prompt is too long), or
        ``kind="stream_cut"`` (a 200 stream that sends ``after_chunks`` text deltas, then an
        ``overloaded_error`` event, as the API does when it sheds load mid-answer)."""
        self._script.fail(
            status=status,
            retry_after=retry_after,
            kind=kind,
            after_chunks=after_chunks,
            message=message,
        )
        return self

    def stall(self) -> asyncio.Event:
        """Queue a stream that sends ``message_start`` and then nothing; the returned event is
        set when it has started. ``streams_closed`` counts the streams the client closed."""
        return self._script.stall().started

    # --- serving ------------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        answer = self._script.answer(body)
        if answer is None:
            self.exhausted = AnthropicApiExhaustedError(
                f"anthropic_api has no answer for Messages API request #{len(self.requests)}: "
                f"the script held {len(self.requests) - 1}. Queue more with "
                "anthropic_api.reply(...) or anthropic_api.fail(...)."
            )
            answer = error_answer(400, "invalid_request_error", str(self.exhausted))
        if isinstance(answer, JsonAnswer):
            return httpx.Response(answer.status, json=answer.body, headers=dict(answer.headers))
        return httpx.Response(200, headers=dict(STREAM_HEADERS), content=self._stream(answer))

    async def _stream(self, answer: StreamAnswer) -> AsyncIterator[bytes]:
        for event in answer.events:
            yield event
        if answer.stall is not None:
            yield await self._stalled(answer.stall)

    async def _stalled(self, stall: Stall) -> bytes:
        try:
            stall.started.set()
            await asyncio.Event().wait()  # until the client goes away
        finally:
            self.streams_closed += 1
        return b""

    # --- interception -------------------------------------------------------------------------

    def start(self) -> None:
        """Intercept: the respx router for ``httpx``, the bridge for the SDK's ``httpx2``."""
        self.router.start()
        original = httpx2.AsyncHTTPTransport.handle_async_request
        self._original = original
        api = self

        async def handle(transport: Any, request: httpx2.Request) -> httpx2.Response:
            url = request.url
            if url.host == api._host and (url.port or 80) == api._port:
                return await api._bridge(request)
            if url.host in _LOOPBACK:
                return await original(transport, request)
            raise httpx2.ConnectError(
                f"anthropic_api: refusing to reach {url} from a test (only the emulated "
                "Messages API and loopback addresses are reachable)",
                request=request,
            )

        setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle)  # noqa: B010

    def stop(self) -> None:
        if self._original is not None:
            setattr(httpx2.AsyncHTTPTransport, "handle_async_request", self._original)  # noqa: B010
            self._original = None
        self.router.stop(quiet=True)

    async def _bridge(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        response = await self.router.async_handler(
            httpx.Request(
                request.method,
                str(request.url),
                headers=list(request.headers.raw),
                content=content,
            )
        )
        headers = list(response.headers.raw)
        try:
            body = response.content  # respx read plain bodies already
        except httpx.ResponseNotRead:
            return httpx2.Response(
                response.status_code,
                headers=headers,
                stream=_BridgedStream(response),
                request=request,
            )
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request)


class _BridgedStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
